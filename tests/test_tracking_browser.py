"""A real sweep in the real MLflow UI, opened in headless Debian Chromium: the demo's six trails (three settings × two
seeds, on tiny settings) tracked to an `mlflow server`, then the sweep's experiment opened as a user would. Its runs
view lists every trail by its run name, with no collapsed parent row; the view the sweep links to draws eval/reward
and train/grad_norm beside them; its screenshot is kept as reports/mlflow_ui.png."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tracking_support import MlflowServer, cache_dir_of, fresh_store

from harness.sweepdir import read_trail_meta, trail_dirs
from harness.tracking.metadata import trail_run_name
from harness.tracking.view import view_path

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.mlflow_server, pytest.mark.timeout(900)]

CHROMIUM = "/usr/bin/chromium"
REPORTS = Path(__file__).resolve().parent.parent / "reports"


def _chromium(user_dir: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={user_dir}", "--window-size=1600,1000", "--virtual-time-budget=40000", *extra, url],
        capture_output=True, text=True, timeout=240)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_a_real_sweeps_experiment_shows_every_trail_and_its_charts(tmp_path, request, tiny, monkeypatch):
    import matplotlib.image
    from mlflow.tracking import MlflowClient

    from harness.cli import main

    fresh_store(cache_dir_of(request), tmp_path / "store")
    server = MlflowServer(tmp_path / "store" / "mlflow.db", tmp_path / "server").start()
    try:
        monkeypatch.chdir(tmp_path)
        tiny = [o for o in tiny if not o.startswith("tracking=")]
        assert main(["sweep", "demo", "seed=1,2", *tiny, f"tracking.uri={server.url}", "tracking.sync_every_s=1",
                     "--root", str(tmp_path / "runs")]) == 0
        sweep_dir = tmp_path / "runs" / "demo"
        meta = json.loads((sweep_dir / "sweep.json").read_text())
        client = MlflowClient(tracking_uri=server.url)
        experiment = client.get_experiment(meta["mlflow_experiment_id"])
        assert experiment.name == "harness/demo"
        names = [trail_run_name(d) for d in trail_dirs(sweep_dir)]
        assert len(set(names)) == 6 and "m2po · stale 256 · seed 2" in names  # fixed mode: no d2+d1, no rollout
        runs = client.search_runs([experiment.experiment_id])
        assert sorted(r.info.run_name for r in runs) == sorted(names + ["demo · summary"])
        assert all("mlflow.parentRunId" not in r.data.tags for r in runs)
        for run in runs:  # axes as params: Group by and parallel coordinates
            if run.data.tags["harness.kind"] == "trail":
                assert {"stale", "alloc", "rollout", "algo", "seed"} <= set(run.data.params)
                assert run.info.end_time - run.info.start_time > 0  # the trail's own start, not the sync's
        summary = client.get_run(meta["mlflow_summary_run_id"])
        attached = {Path(f.path).name for f in client.list_artifacts(summary.info.run_id, "report")}
        assert "REPORT.md" in attached and any(n.endswith(".png") for n in attached)
        assert any(n.endswith(".csv") for n in attached)
        assert {read_trail_meta(d)["name"] for d in trail_dirs(sweep_dir)} == {
            r.data.tags["harness.trail"] for r in runs if r.data.tags["harness.kind"] == "trail"}

        # The experiment as MLflow 3 opens it once its "Model training" switch is on (a fresh browser starts on the
        # GenAI overview, whatever the experiment says): its runs table, one row per trail, no parent to expand.
        default = f"{server.url}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning"
        dom = _chromium(tmp_path / "chrome-table", default, "--dump-dom").stdout
        for text in [*names, "demo · summary"]:
            assert text in dom, f"{text!r} is not on the experiment's runs page"
        # The link the sweep prints: every trail beside the charts of eval/reward and train/grad_norm.
        assert meta["mlflow_view"] == view_path(experiment.experiment_id)
        charts = f"{server.url}/{meta['mlflow_view']}"
        dom = _chromium(tmp_path / "chrome-chart", charts, "--dump-dom").stdout
        for text in [*names, "eval/reward", "train/grad_norm"]:
            assert text in dom, f"{text!r} is not on the sweep's chart view"
        assert "eval/reward_" not in dom and "m2po/masked_frac" not in dom  # the view's filter: only those two charts
        assert "demo · summary" not in dom  # and only the trails

        png = tmp_path / "mlflow_ui.png"
        _chromium(tmp_path / "chrome-shot", charts, f"--screenshot={png}")
        assert png.is_file() and png.stat().st_size > 30_000
        pixels = matplotlib.image.imread(png)
        assert pixels.shape[:2] == (1000, 1600) and pixels[..., :3].std() > 0.05  # not a blank page
        REPORTS.mkdir(exist_ok=True)
        shutil.copy(png, REPORTS / "mlflow_ui.png")
    finally:
        server.stop()
