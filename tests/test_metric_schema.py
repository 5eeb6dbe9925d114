"""The metric schema (harness/store/metrics.py) is what the engines write and what every reader asks for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_engine_run import make_run_dir
from tiny_trail import tiny_trail

from harness.backends.runner import run_trail_dir
from harness.engines.areal.ingest import TAG_MAP
from harness.orchestration.progress import HEADLINE_METRICS
from harness.report import plots, systems, tables
from harness.store.journal import read_records
from harness.store.metrics import BASE_OF, SCHEMA, UPDATE_STATS, is_declared
from harness.tracking.view import CHART_METRICS

REPO = Path(__file__).resolve().parent.parent
RECORD_FIELDS = {"step", "time"}  # the journal's own fields beside the metrics


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> set:
    """Every metric two tiny trails journal: GRPO in fixed mode and M2PO in async mode (between them, every loss
    statistic and both clocks)."""
    root = tmp_path_factory.mktemp("schema")
    keys: set = set()
    for name, extra in {"grpo-fixed": ("algo=grpo", "engine.staleness_mode=fixed", "stale=2"),
                        "m2po-async": ("algo=m2po", "engine.staleness_mode=async", "stale=2", "alloc=d2+d1",
                                       "rollout=6")}.items():
        run_dir = make_run_dir(root, name, tiny_trail(*extra))
        assert run_trail_dir(run_dir) == "done"
        for record in read_records(run_dir):
            keys |= set(record) - RECORD_FIELDS
    return keys


def test_the_embedded_engine_writes_every_declared_metric_and_nothing_else(written):
    assert sorted(written - set(SCHEMA)) == []  # a name written but not declared
    assert sorted(set(SCHEMA) - written) == []  # a name declared that no engine writes


def test_the_mappings_into_the_journal_name_declared_metrics():
    assert all(name in SCHEMA for name in [*UPDATE_STATS.values(), *BASE_OF, *BASE_OF.values(), *TAG_MAP])


def test_every_reader_asks_for_declared_metrics():
    read = {*HEADLINE_METRICS, *CHART_METRICS, *plots.PLOTTED, *plots.LOG_AXIS, *tables.FINAL_EVAL.values(),
            tables.FINAL_EVAL_SIZE, *(metric for metric, _ in tables.SUMMARIES.values()),
            *systems.WEIGHTED.values(), systems.TIME, systems.RATE, systems.STEP_S}
    assert sorted(name for name in read if not is_declared(name)) == []


def test_is_declared_keeps_areal_tags_and_refuses_a_misspelling():
    assert is_declared("areal/ppo_actor/update/lr") and is_declared("eval/reward")
    assert not is_declared("eval/rewards") and not is_declared("train/gradnorm")


def test_docs_metrics_is_the_schema():
    rows = re.findall(r"^\| `([^`]+)` \| (.+?) \| (.+?) \|$", (REPO / "docs" / "METRICS.md").read_text(), re.M)
    assert rows == [(m.name, m.meaning, m.unit) for m in SCHEMA.values()]
