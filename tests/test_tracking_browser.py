"""A real sweep in the real MLflow UI, opened in headless Debian Chromium: the demo sweep (three cells × five paired
seeds, fifteen trails of a small trail that learns) tracked to an `mlflow server`, then the link the sweep prints
opened as a user would. Its runs view lists every trail by its run name, with no collapsed parent row; the view the
link opens groups the trails by cell and draws every cell — the on-policy baseline among them — as its mean with a
min–max band in each of its four charts, and the test fails when a cell is not drawn (it hides one to make sure).
The screenshot is kept as reports/mlflow_ui.png."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Dict, List

import pytest
from chromium import CHROMIUM, Chromium, ChromiumError
from tiny_trail import tiny_trail
from tracking_support import MlflowServer, cache_dir_of, fresh_store

from harness.store.sweepdir import read_trail_meta, trail_dirs
from harness.tracking.metadata import CELL_TAG, trail_run_name
from harness.tracking.view import CHART_METRICS, view_path

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.mlflow_server, pytest.mark.timeout(1500)]

REPORTS = Path(__file__).resolve().parent.parent / "reports"
# A trail small enough for fifteen of them to take a few minutes on two cores, big enough to learn something, so the
# curves differ: a 2 × 32 model pretrained to 0.3 probe accuracy (about 30 CPU-s, once: the base-model cache), then
# 40 steps of 4 prompts × 8 samples, evaluated every 10 steps on 64 problems.
SMALL = ("engine.steps=40", "engine.batch_prompts=4", "engine.group_size=8", "engine.eval_every=10",
         "engine.eval_size=64", "engine.checkpoint_every=20", "engine.max_new_tokens=10", "engine.n_layer=2",
         "engine.n_embd=32", "engine.n_head=2", "engine.base_max_steps=2000", "engine.base_check_every=100",
         "engine.base_target_acc=0.3", "engine.lr=0.001")
# MLflow opens its assistant panel, once, the first time a browser opens the UI from localhost (the flag below, in the
# page's localStorage, says it has done so); set, the screenshot shows the page as a user sees it from then on.
ASSISTANT_SHOWN = "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true')"
# chart card title -> the labels of its legend, and group row -> whether its visibility box is ticked
CHARTS_JS = """(() => {
  const cards = [...document.querySelectorAll('[data-testid="experiment-view-compare-runs-card"]')];
  const legends = Object.fromEntries(cards.map(card => [card.innerText.split('\\n')[0].trim(),
    [...card.querySelectorAll('*')].filter(e => e.children.length === 0).map(e => e.textContent.trim())
      .filter(t => / \\([^()]+\\)$/.test(t))]));
  const groups = Object.fromEntries([...document.querySelectorAll('.is-visibility-toggle-checkbox')]
    .map(box => [box.closest('.ag-row').innerText, box.checked])
    .filter(([text]) => text.includes('Group: '))
    .map(([text, on]) => [text.split('Group: ')[1].split('\\n')[0].trim(), on]));
  return {legends, groups};
})()"""


def _hide_group_js(cell: str) -> str:
    return f"""(() => {{
      const box = [...document.querySelectorAll('.is-visibility-toggle-checkbox')]
        .find(b => b.closest('.ag-row').innerText.includes({json.dumps('Group: ' + cell)}));
      box.click();
      return true;
    }})()"""


def undrawn(shown: Dict[str, List[str]], cells: List[str]) -> Dict[str, List[str]]:
    """chart -> the cells not drawn in it as a group (a legend entry 'cell (metric)'); {} when every cell is."""
    out = {}
    for metric in CHART_METRICS:
        missing = [c for c in cells if f"{c} ({metric})" not in shown.get(metric, [])]
        if missing:
            out[metric] = missing
    return out


def _wait_until_drawn(browser: Chromium, cells: List[str], expect: Dict[str, List[str]],
                      timeout_s: float = 300.0) -> dict:
    """Poll the page until the charts leave exactly `expect` undrawn and the runs list has a group row per cell; the
    page's state (the assertions show it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            state = browser.evaluate(CHARTS_JS)
        except ChromiumError as exc:  # the page is still loading: nothing is drawn yet
            state = {"legends": {}, "groups": {}, "error": str(exc)}
        settled = undrawn(state["legends"], cells) == expect and set(state["groups"]) == set(cells)
        if settled or time.monotonic() > deadline:
            return state
        time.sleep(1.0)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_the_printed_link_draws_every_cell_of_a_real_sweep_grouped(tmp_path, request, monkeypatch, capsys):
    import matplotlib.image
    from mlflow.tracking import MlflowClient

    from harness.cli import main

    fresh_store(cache_dir_of(request), tmp_path / "store")
    server = MlflowServer(tmp_path / "store" / "mlflow.db", tmp_path / "server").start()
    try:
        monkeypatch.chdir(tmp_path)
        trail = [o for o in tiny_trail(*SMALL) if not o.startswith("tracking=")]
        assert main(["sweep", "demo", *trail, f"tracking.uri={server.url}", "tracking.sync_every_s=1",
                     "--root", str(tmp_path / "runs")]) == 0
        printed = capsys.readouterr().out
        links = [line.split("MLflow: ", 1)[1].strip() for line in printed.splitlines() if line.startswith("MLflow: ")]
        sweep_dir = tmp_path / "runs" / "demo"
        meta = json.loads((sweep_dir / "sweep.json").read_text())
        client = MlflowClient(tracking_uri=server.url)
        experiment = client.get_experiment(meta["mlflow_experiment_id"])
        assert experiment.name == "harness/demo"
        assert links == [f"{server.url}/{view_path(experiment.experiment_id)}"]
        dirs = trail_dirs(sweep_dir)
        names = [trail_run_name(d) for d in dirs]
        cells = sorted({trail_run_name(d, with_seed=False) for d in dirs})
        assert len(set(names)) == len(dirs) >= 15 and "m2po · stale 256 · seed 2" in names  # fixed mode: the lag
        assert cells == ["grpo · stale 1", "grpo · stale 256", "m2po · stale 256"]
        runs = client.search_runs([experiment.experiment_id])
        assert sorted(r.info.run_name for r in runs) == sorted(names + ["demo · summary"])
        assert all("mlflow.parentRunId" not in r.data.tags for r in runs)
        for run in runs:  # axes as params: Group by and parallel coordinates; the cell as a tag: the view's groups
            if run.data.tags["harness.kind"] == "trail":
                assert {"stale", "alloc", "rollout", "algo", "seed"} <= set(run.data.params)
                assert run.info.end_time - run.info.start_time > 0  # the trail's own start, not the sync's
                assert run.data.tags[CELL_TAG] == re.sub(r" · seed \d+$", "", run.info.run_name)
                start = min(client.get_metric_history(run.info.run_id, "eval/reward"), key=lambda m: m.step)
                assert start.step == 0 and start.value == run.data.metrics["base/reward"]  # from the base model
        summary = client.get_run(meta["mlflow_summary_run_id"])
        attached = {Path(f.path).name for f in client.list_artifacts(summary.info.run_id, "report")}
        assert {"REPORT.md", "forest_contrasts.png", "eval_reward.png"} <= attached
        assert any(n.endswith(".csv") for n in attached)
        assert {read_trail_meta(d)["name"] for d in dirs} == {
            r.data.tags["harness.trail"] for r in runs if r.data.tags["harness.kind"] == "trail"}

        with Chromium(tmp_path / "chrome") as browser:
            browser.open(f"{server.url}/health")
            browser.wait_for("location.href.endsWith('/health') && document.readyState === 'complete'")
            browser.evaluate(ASSISTANT_SHOWN)
            # The experiment as MLflow 3 opens it once its "Model training" switch is on (a fresh browser starts on
            # the GenAI overview, whatever the experiment says): its runs table, one row per trail, no parent.
            browser.open(f"{server.url}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning")
            names_js = json.dumps([*names, "demo · summary"])
            browser.wait_for(f"{names_js}.every(n => document.body.innerText.includes(n))")

            # The link the sweep printed: the trails grouped by cell, every cell drawn in every chart.
            browser.open(links[0])
            state = _wait_until_drawn(browser, cells, {})
            assert undrawn(state["legends"], cells) == {}, state
            assert state["groups"] == {cell: True for cell in cells}, state  # a group row per cell, each shown
            assert set(state["legends"]) == set(CHART_METRICS), state  # the view's four charts, no other
            body = browser.evaluate("document.body.innerText")
            assert "demo · summary" not in body and "Group by: harness.cell" in body
            png = browser.screenshot(tmp_path / "mlflow_ui.png")
            # A cell hidden in the runs list is no longer drawn, and the check says which.
            browser.evaluate(_hide_group_js("grpo · stale 1"))
            hidden = {metric: ["grpo · stale 1"] for metric in CHART_METRICS}
            state = _wait_until_drawn(browser, cells, hidden)
            assert undrawn(state["legends"], cells) == hidden, state
            assert state["groups"] == {cell: cell != "grpo · stale 1" for cell in cells}, state

        pixels = matplotlib.image.imread(png)
        assert pixels.shape[:2] == (1000, 1600) and pixels[..., :3].std() > 0.05  # not a blank page
        REPORTS.mkdir(exist_ok=True)
        shutil.copy(png, REPORTS / "mlflow_ui.png")
    finally:
        server.stop()
