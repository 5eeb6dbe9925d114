"""AReaL TensorBoard events → journal: key mapping, a file still being written, a resumed run (no step twice)."""

from __future__ import annotations

import math
import shutil

import pytest

from harness.engines.areal.ingest import JournalSync, TensorBoardTail, map_tags, read_tensorboard
from harness.store.journal import Journal, read_records

torch_tb = pytest.importorskip("torch.utils.tensorboard")


def _areal_step(step: int, scale: float = 1.0) -> dict:
    """One step of scalars under AReaL's own stat keys (values depend on the step and a per-run scale)."""
    return {
        "ppo_actor/update/grad_norm": 0.5 + step * scale,
        "ppo_actor/update/clip_ratio/avg": 0.01 * step,
        "ppo_actor/update/entropy/avg": 1.5,
        "rollout/reward": 0.1 * step * scale,
        "eval-rollout/reward": 0.2 * step,
        "ppo_actor/update/version_stats/sample_staleness_theta_avg": 3.0,
        "ppo_actor/update/version_stats/sample_staleness_theta_max": 7.0,
        "ppo_actor/update/n_valid_tokens": 750.0,
        "ppo_actor/n_valid_tokens": 1000.0,
        "timeperf/train_step": 12.5,
    }


def _log(writer, steps, scale: float = 1.0) -> None:
    for step in steps:
        for tag, value in _areal_step(step, scale).items():
            writer.add_scalar(tag, value, step)
    writer.flush()


def test_map_tags_uses_harness_names_and_keeps_the_rest():
    m = map_tags(_areal_step(4))
    assert m["train/grad_norm"] == pytest.approx(4.5)
    assert m["train/clip_frac"] == pytest.approx(0.04)
    assert m["rollout/reward"] == pytest.approx(0.4) and m["eval/reward"] == pytest.approx(0.8)
    assert m["staleness/mean"] == 3.0 and m["staleness/max"] == 7.0
    assert m["m2po/masked_frac"] == pytest.approx(0.25)
    assert m["areal/timeperf/train_step"] == 12.5
    assert "areal/ppo_actor/update/grad_norm" not in m   # mapped tags are not duplicated
    assert map_tags({"grpo_actor/grad_norm": 2.0})["train/grad_norm"] == 2.0   # older AReaL


def test_file_still_being_written(tmp_path):
    tb, run = tmp_path / "tb", tmp_path / "run"
    writer = torch_tb.SummaryWriter(log_dir=str(tb))
    journal = Journal(run)
    sync = JournalSync(run, journal, tb)
    _log(writer, range(0, 3))
    assert sync.sync() == [1, 2]            # TB step 2 (journal 3) may still get tags: held back
    _log(writer, range(3, 6))
    assert sync.sync() == [3, 4, 5]
    assert sync.sync() == []
    writer.close()
    assert sync.sync(final=True) == [6]
    records = read_records(run)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[5]["train/grad_norm"] == pytest.approx(5.5)
    assert records[0]["time"] > 0


def test_torn_record_is_read_once_completed(tmp_path):
    """A flush that stops mid-record: the reader waits for the rest and never loses or repeats an event."""
    src = tmp_path / "src"
    writer = torch_tb.SummaryWriter(log_dir=str(src))
    _log(writer, range(0, 4))
    writer.close()
    full = next(src.glob("events.out.tfevents.*")).read_bytes()
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    live = live_dir / next(src.glob("events.out.tfevents.*")).name
    cut = len(full) // 2 + 7
    live.write_bytes(full[:cut])
    tail = TensorBoardTail(live_dir)
    first = tail.poll()
    with open(live, "ab") as fh:
        fh.write(full[cut:])
    second = tail.poll()
    assert first > 0 and second > 0 and first + second == 4 * len(_areal_step(0))
    steps, _ = tail.merged()
    assert sorted(steps) == [0, 1, 2, 3] and steps[3]["ppo_actor/update/grad_norm"] == pytest.approx(3.5)


def test_resumed_run_relogs_steps_without_duplicates(tmp_path):
    tb, run = tmp_path / "tb", tmp_path / "run"
    first = torch_tb.SummaryWriter(log_dir=str(tb), filename_suffix=".a")
    _log(first, range(0, 6))          # the first attempt got to TB step 5, then died
    first.close()
    journal = Journal(run)
    sync = JournalSync(run, journal, tb)
    sync.sync()
    assert [r["step"] for r in read_records(run)] == [1, 2, 3, 4, 5]
    journal.close()

    # no pause: both files are created within the same second, ordered by their first event's wall time
    second = torch_tb.SummaryWriter(log_dir=str(tb), filename_suffix=".b")
    _log(second, range(3, 9), scale=2.0)   # recover restarts from its checkpoint at TB step 3
    second.close()
    resumed = next(tb.glob("*.b"))
    resumed.rename(tb / "events.out.tfevents.0000000001.a-host")   # its name now sorts first: order is by content
    sync = JournalSync(run, Journal(run), tb)   # a fresh engine process, as on a re-run
    sync.sync(final=True)
    sync.journal.close()
    records = read_records(run)
    steps = [r["step"] for r in records]
    assert steps == list(range(1, 10)) and len(set(steps)) == len(steps)
    by_step = {r["step"]: r for r in records}
    assert by_step[3]["train/grad_norm"] == pytest.approx(2.5)       # before the checkpoint: first attempt
    assert by_step[4]["train/grad_norm"] == pytest.approx(0.5 + 3 * 2.0)  # from the checkpoint on: resumed run
    assert by_step[9]["train/grad_norm"] == pytest.approx(0.5 + 8 * 2.0)


def test_reingesting_a_finished_run_changes_nothing(tmp_path):
    tb, run = tmp_path / "tb", tmp_path / "run"
    writer = torch_tb.SummaryWriter(log_dir=str(tb))
    _log(writer, range(0, 4))
    writer.close()
    with Journal(run) as journal:
        JournalSync(run, journal, tb).sync(final=True)
    before = (run / "journal.jsonl").read_bytes()
    with Journal(run) as journal:
        sync = JournalSync(run, journal, tb)
        assert sync.sync(final=True) == []
    assert (run / "journal.jsonl").read_bytes() == before


def test_nan_values_survive_and_read_tensorboard(tmp_path):
    tb = tmp_path / "tb"
    writer = torch_tb.SummaryWriter(log_dir=str(tb))
    writer.add_scalar("ppo_actor/update/grad_norm", float("nan"), 0)
    writer.add_scalar("ppo_actor/update/grad_norm", 1.0, 1)
    writer.close()
    data = read_tensorboard(tb)
    assert math.isnan(data[1]["train/grad_norm"]) and data[2]["train/grad_norm"] == 1.0
    run = tmp_path / "run"
    with Journal(run) as journal:
        JournalSync(run, journal, tb).sync(final=True)
    with Journal(run) as journal:             # NaN == NaN for the purpose of "already journaled"
        assert JournalSync(run, journal, tb).sync(final=True) == []
    assert math.isnan(read_records(run)[0]["train/grad_norm"])


def test_missing_directory_is_empty(tmp_path):
    run = tmp_path / "run"
    with Journal(run) as journal:
        assert JournalSync(run, journal, tmp_path / "nope").sync(final=True) == []
    shutil.rmtree(run)
