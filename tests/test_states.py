"""TrailState is the one definition of a trail's states; status.json holds its plain string values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.store.rundir import read_status, record_outcome
from harness.store.states import FINISHED, TERMINAL, TrailState


def test_properties() -> None:
    assert set(FINISHED) == {TrailState.DONE, TrailState.DIVERGED}
    assert set(TERMINAL) == {TrailState.DONE, TrailState.DIVERGED, TrailState.FAILED, TrailState.CANCELLED,
                             TrailState.INTERRUPTED}
    assert [s.exit_code for s in TERMINAL] == [0, 1, 3, 130, 1]
    assert TrailState.INTERRUPTED.mlflow_status == "KILLED" and not TrailState.INTERRUPTED.finished
    assert TrailState.DIVERGED.mlflow_status == "FINISHED" and TrailState.CANCELLED.mlflow_status == "KILLED"
    assert TrailState("diverged") is TrailState.DIVERGED and f"{TrailState.DONE}" == "done"
    assert {"done": 1}[TrailState.DONE] == 1 and TrailState.DONE in ("done",)


def test_record_outcome_writes_plain_values_and_ended(tmp_path: Path) -> None:
    record_outcome(tmp_path, TrailState.RUNNING, "", step=2)
    assert "ended" not in read_status(tmp_path)
    record_outcome(tmp_path, "diverged", "loss is nan")
    raw = json.loads((tmp_path / "status.json").read_text())
    assert raw["state"] == "diverged" and raw["reason"] == "loss is nan" and raw["step"] == 2 and raw["ended"] > 0
    record_outcome(tmp_path, TrailState.PENDING)
    assert read_status(tmp_path)["reason"] == "loss is nan"  # no reason given: the recorded one stays
    with pytest.raises(ValueError):
        record_outcome(tmp_path, "exploded")
