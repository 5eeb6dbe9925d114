"""The sweep's view in MLflow's UI: a shared view stored on the sweep's experiment and the link that opens it.

Why: MLflow 3 opens an experiment on its GenAI overview in a browser that has never switched to "Model training"
(a browser-local setting, whatever the experiment's tags say), and its runs page starts as a table of every metric's
chart sections in key order, each chart drawing only the first 10 runs, so the curves the study is about sit below
the fold and most cells are not drawn. The link sets the workflow and the chart mode; the shared view (an experiment
tag, `mlflow.sharedViewState.<key>`, that MLflow's UI reads when the link names the key) holds the runs page's state:

- runs grouped by the tag harness.cell (the run name without the seed: the acting axes and the algorithm), each group
  drawn as the mean of its runs with a min–max band (MLflow's "Group by" with the `average` aggregate and grouped
  values in charts), and every group shown (`runsHiddenMode` SHOW_ALL: MLflow's default shows the first 10 rows);
- one section of four charts two to a row: eval/reward, train/grad_norm on a log axis, m2po/masked_frac and
  train/clip_frac; the chart search keeps MLflow's own charts of the other metrics out of sight;
- the trails only (the summary run has no curves), sorted by run name, with the axes and the status as table columns.

MLflow (3.17) takes from a shared view the search facets and the UI state fields it lists
(`EXPERIMENT_PAGE_UI_STATE_FIELDS`) except runsExpanded, runsPinned, runsHidden, runsVisibilityMap and
autoRefreshEnabled: hiding single runs cannot be shared, showing all of them can. Nothing here imports mlflow: the
sweep prints the link from sweep.json.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Dict, List

from harness.store.metrics import EVAL_REWARD, M2PO_MASKED_FRAC, TRAIN_CLIP_FRAC, TRAIN_GRAD_NORM
from harness.tracking.metadata import CELL_TAG

VIEW_KEY = "harness"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
SECTION = "harness-cells"
# metric -> y axis scale, in the order the charts are laid out
CHART_METRICS: Dict[str, str] = {EVAL_REWARD: "linear", TRAIN_GRAD_NORM: "log", M2PO_MASKED_FRAC: "linear",
                                 TRAIN_CLIP_FRAC: "linear"}
CHARTS = "|".join(f"^{key}$" for key in CHART_METRICS)  # a regular expression over metric keys (MLflow's chart search)
CHART_COLUMNS = 2
CHART_HEIGHT = 300  # pixels: both rows of charts, legends included, in a 1600 × 1000 window
COLUMNS = ["attributes.`Run Name`", "attributes.`Duration`", f"metrics.`{EVAL_REWARD}`", f"metrics.`{TRAIN_GRAD_NORM}`",
           "params.`algo`", "params.`stale`", "params.`seed`", "tags.`harness.status`"]
TRAILS = "tags.`harness.kind` = 'trail'"  # the summary run has no curves: the view lists the trails only
ORDER_BY = "tags.`mlflow.runName`"  # by run name: an algorithm's cells together, GRPO (the baseline) first
GROUP_BY = {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": CELL_TAG}]}


def _chart(metric: str, scale: str) -> Dict[str, Any]:
    """One line chart card of MLflow's runs page (the fields of its RunsChartsLineCardConfig)."""
    return {"uuid": f"harness-{metric.replace('/', '-')}", "type": "LINE", "metricSectionId": SECTION,
            "deleted": False, "isGenerated": False, "runsCountToCompare": 100, "metricKey": metric,
            "selectedMetricKeys": [metric], "lineSmoothness": 0, "scaleType": scale, "xAxisScaleType": "linear",
            "xAxisKey": "step", "selectedXAxisMetricKey": "", "useGlobalXaxisKey": False,
            "useGlobalLineSmoothing": False, "range": {}}


def charts() -> List[Dict[str, Any]]:
    return [_chart(metric, scale) for metric, scale in CHART_METRICS.items()]


def view_state() -> str:
    """The shared view's JSON: the trails grouped by cell, every group drawn, the four charts, the table's columns."""
    section = {"uuid": SECTION, "name": "by cell: mean of the seeds, min–max band", "display": True,
               "isReordered": True, "deleted": False, "isGenerated": False, "columns": CHART_COLUMNS,
               "cardHeight": CHART_HEIGHT}
    return json.dumps({
        "searchFilter": TRAILS, "orderByKey": ORDER_BY, "orderByAsc": True, "selectedColumns": COLUMNS,
        "groupBy": GROUP_BY, "useGroupedValuesInCharts": True, "groupsExpanded": {}, "runsHiddenMode": "SHOW_ALL",
        "compareRunCharts": charts(), "compareRunSections": [section], "isAccordionReordered": True,
        "chartsSearchFilter": CHARTS, "hideEmptyCharts": True,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    })


def set_view(client: Any, experiment_id: str) -> None:
    """Store the shared view on the sweep's experiment (idempotent: the same tag, the same value)."""
    client.set_experiment_tag(experiment_id, VIEW_TAG, view_state())


def view_path(experiment_id: str) -> str:
    """The part of the UI's URL after the server: the runs page in chart mode with the sweep's view."""
    return (f"#/experiments/{experiment_id}/runs?workflowType=machine_learning&compareRunsMode=CHART"
            f"&viewStateShareKey={VIEW_KEY}")


def view_line(uri: str, path: str) -> str:
    """Where to see the sweep: the link on a server, or the `mlflow ui` command and the link for a sqlite store."""
    if uri.startswith(("http://", "https://")):
        return f"MLflow: {uri.rstrip('/')}/{path}"
    return f"MLflow: `mlflow ui --backend-store-uri {shlex.quote(uri)}`, then http://127.0.0.1:5000/{path}"
