"""The sweep's view in MLflow's UI: a shared view stored on the sweep's experiment and the link that opens it.

Why: MLflow 3 opens an experiment on its GenAI overview in a browser that has never switched to "Model training"
(a browser-local setting, whatever the experiment's tags say), and its runs page starts as a table of every metric's
chart sections in key order, so the curves the study is about sit below the fold. The link sets the workflow and
the chart mode, and the shared view (an experiment tag MLflow's UI reads by key) lists the trails (not the summary
run) beside the charts of eval/reward and train/grad_norm. Nothing here imports mlflow: the sweep prints the link from
sweep.json.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

VIEW_KEY = "harness"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
CHARTS = "^eval/reward$|^train/grad_norm$"  # a regular expression over metric keys, as MLflow's chart search takes
COLUMNS = ["attributes.`Run Name`", "attributes.`Duration`", "metrics.`eval/reward`", "metrics.`train/grad_norm`",
           "params.`algo`", "params.`stale`", "params.`seed`", "tags.`harness.status`"]


TRAILS = "tags.`harness.kind` = 'trail'"  # the summary run has no curves: the view lists the trails only


def view_state() -> str:
    """The shared view's JSON: the trails, the two charts, the table's columns."""
    return json.dumps({"searchFilter": TRAILS, "chartsSearchFilter": CHARTS, "selectedColumns": COLUMNS})


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
