"""The sweep's runs in the real MLflow UI, opened in headless Debian Chromium: the DOM lists the parent and both
trail runs, and the screenshot (kept as reports/mlflow_ui.png) is a real rendered page."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tracking_support import MlflowServer, append_steps, cache_dir_of, fresh_store, make_sweep

from harness.rundir import write_status
from harness.tracking.config import TrackingConfig
from harness.tracking.sweep_run import ensure_sweep_run, finish_sweep_run
from harness.tracking.sync import sync_sweep

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.mlflow_server, pytest.mark.timeout(600)]

CHROMIUM = "/usr/bin/chromium"
REPORTS = Path(__file__).resolve().parent.parent / "reports"


def _chromium(user_dir: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={user_dir}", "--window-size=1600,1000", "--virtual-time-budget=15000", *extra, url],
        capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_mlflow_ui_shows_the_sweep_runs_in_headless_chromium(tmp_path, request):
    import matplotlib.image

    fresh_store(cache_dir_of(request), tmp_path / "store")
    server = MlflowServer(tmp_path / "store" / "mlflow.db", tmp_path / "server").start()
    try:
        names = ["grpo", "m2po"]
        sweep_dir = make_sweep(tmp_path / "runs", name="demo", trails=names)
        assert ensure_sweep_run(sweep_dir, TrackingConfig(uri=server.url))
        for i, name in enumerate(names):
            append_steps(sweep_dir / name, range(1, 151), seed=i)
            write_status(sweep_dir / name, "done")
        assert all(r.error is None for r in sync_sweep(sweep_dir))
        assert finish_sweep_run(sweep_dir, "done")
        experiment = json.loads((sweep_dir / "sweep.json").read_text())["mlflow_experiment_id"]
        # A shared view (an experiment tag the UI reads by key): sorted by name, so the table lists the parent and
        # the trails as rows (date order folds trails under the parent), with curves' last values and the axes.
        view = {"orderByKey": "attributes.run_name", "orderByAsc": True, "searchFilter": "",
                "selectedColumns": ["attributes.`Run Name`", "attributes.`Created`", "attributes.`Duration`",
                                    "metrics.`train/grad_norm`", "metrics.`eval/reward`", "metrics.`m2po/masked_frac`",
                                    "params.`algo`", "params.`stale`", "tags.`harness.status`"]}
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=server.url).set_experiment_tag(experiment, "mlflow.sharedViewState.sweep-demo",
                                                                 json.dumps(view))
        url = f"{server.url}/#/experiments/{experiment}/runs?viewStateShareKey=sweep-demo"

        dom = _chromium(tmp_path / "chrome-dom", url, "--dump-dom").stdout
        for text in ["demo"] + [f"stale 256 d2+d1 rollout 96 {n}" for n in names] + ["train/grad_norm"]:
            assert text in dom, f"{text!r} is not on the experiment page"

        png = tmp_path / "mlflow_ui.png"
        _chromium(tmp_path / "chrome-shot", url, f"--screenshot={png}")
        assert png.is_file() and png.stat().st_size > 30_000
        pixels = matplotlib.image.imread(png)
        assert pixels.shape[:2] == (1000, 1600) and pixels[..., :3].std() > 0.05  # not a blank page
        REPORTS.mkdir(exist_ok=True)
        shutil.copy(png, REPORTS / "mlflow_ui.png")
    finally:
        server.stop()
