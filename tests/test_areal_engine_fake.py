"""engine=areal's run() against a fake AReaL: a small script in place of examples/math/gsm8k_rl.py.

The fake parses the command the harness generates, writes TensorBoard events with TensorBoard's own event writer
under AReaL's stat keys, and prints AReaL's progress line. Before exiting it waits until the harness has journaled a
step, which it can only do by tailing the events while the process still runs.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from harness.backends.runner import run_trail_dir
from harness.engines.areal.command import LOG_NAME
from harness.engines.areal.engine import COMMAND_NAME
from harness.spec.compose import compose_trail
from harness.spec.trails import make_trails
from harness.store.journal import read_records
from harness.store.rundir import read_status, save_config
from harness.store.sweepdir import write_trail_meta

FAKE_GSM8K_RL = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    args = sys.argv[1:]
    assert args[0] == "--config" and Path(args[1]).is_file(), args[:2]
    kv = dict(a.lstrip("+").split("=", 1) for a in args[2:])
    tb = kv["stats_logger.tensorboard.path"]
    steps = int(kv.get("total_train_steps", 4))
    fail_at = int(os.environ.get("FAKE_AREAL_FAIL_AT", "0"))
    Path(tb).mkdir(parents=True, exist_ok=True)
    (Path(tb).parent / "fake_seen_args.txt").write_text("\\n".join(args))
    writer = EventFileWriter(tb)
    skip = int(os.environ.get("FAKE_AREAL_SKIP_STEP", "0"))   # as AReaL resumed past a step it never logged
    for step in range(steps):
        if step + 1 == skip:
            continue
        values = {"ppo_actor/update/grad_norm": 1.0 + step, "rollout/reward": 0.1 * step,
                  "ppo_actor/update/n_valid_tokens": 90.0, "ppo_actor/n_valid_tokens": 100.0,
                  "ppo_actor/update/version_stats/sample_staleness_theta_avg":
                      float(kv["rollout.max_head_offpolicyness"])}
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v)
                                             for t, v in values.items()])
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
        writer.flush()
        print(f"Train step {step + 1}/{steps} done.", flush=True)
        if fail_at and step + 1 == fail_at:
            print("RuntimeError: fake AReaL worker died", file=sys.stderr, flush=True)
            sys.exit(3)
        time.sleep(0.2)
    if os.environ.get("FAKE_AREAL_HANG"):   # a worker that left AReaL's session, then a main process that hangs
        import subprocess
        subprocess.Popen(["sleep", "300"], start_new_session=True)
        time.sleep(300)
    journal = Path(tb).parent / "journal.jsonl"
    deadline = time.time() + 20
    while not (journal.exists() and journal.read_text().strip()) and time.time() < deadline:
        time.sleep(0.1)
    if not (journal.exists() and journal.read_text().strip()):
        print("harness did not ingest while AReaL ran", file=sys.stderr)
        sys.exit(4)
    writer.close()
''')


@pytest.fixture
def fake_checkout(tmp_path: Path) -> Path:
    root = tmp_path / "AReaL"
    (root / "examples/math").mkdir(parents=True)
    (root / "examples/math/gsm8k_rl.py").write_text(FAKE_GSM8K_RL)
    for name in ("gsm8k_grpo.yaml", "gsm8k_m2po.yaml"):
        (root / "examples/math" / name).write_text("actor:\n  eps_clip: 0.4\n")
    return root


def _trail_dir(tmp_path: Path, checkout: Path, extra=()) -> Path:
    overrides = ["engine=areal", "tracking=none", "algo=m2po", "stale=32", "alloc=d1+d2", "rollout=64",
                 f"engine.areal_path={checkout}", f"engine.python={sys.executable}", "engine.poll_seconds=0.1",
                 "engine.total_train_steps=5", *extra]
    cfg = compose_trail(overrides)
    trail = make_trails([(cfg, overrides)])[0]
    run_dir = trail.run_dir(tmp_path / "runs" / "areal_fake")
    save_config(run_dir, cfg, overrides)
    write_trail_meta(run_dir, trail, "areal_fake")
    return run_dir


def test_fake_areal_run_is_launched_and_ingested_live(tmp_path, fake_checkout):
    run_dir = _trail_dir(tmp_path, fake_checkout)
    seen = []
    state = run_trail_dir(run_dir, on_step=lambda step, total, metrics: seen.append((step, total)))
    status = read_status(run_dir)
    assert state == "done", (status, (run_dir / LOG_NAME).read_text()[-2000:])
    records = read_records(run_dir)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert records[-1]["train/grad_norm"] == 5.0 and records[0]["staleness/mean"] == 32.0
    assert records[0]["m2po/masked_frac"] == pytest.approx(0.1)
    assert seen[-1] == (5, 5) and status["step"] == 5
    args = (run_dir / "fake_seen_args.txt").read_text().splitlines()
    assert "++experiment_name=areal-fake" in args and "++rollout.backend=sglang:d1p1t1" in args
    assert "gsm8k_m2po.yaml" in (run_dir / COMMAND_NAME).read_text()
    assert "Train step 5/5 done." in (run_dir / LOG_NAME).read_text()


def test_fake_areal_failure_marks_trail_failed(tmp_path, fake_checkout, monkeypatch):
    monkeypatch.setenv("FAKE_AREAL_FAIL_AT", "3")
    run_dir = _trail_dir(tmp_path, fake_checkout)
    assert run_trail_dir(run_dir) == "failed"
    status = read_status(run_dir)
    assert "exited with code 3" in status["reason"] and "fake AReaL worker died" in status["reason"]
    assert [r["step"] for r in read_records(run_dir)] == [1, 2, 3]   # what AReaL logged before dying is kept


@pytest.mark.e2e
def test_fake_areal_rerun_resumes_without_duplicate_steps(tmp_path, fake_checkout, monkeypatch):
    monkeypatch.setenv("FAKE_AREAL_FAIL_AT", "2")
    run_dir = _trail_dir(tmp_path, fake_checkout)
    assert run_trail_dir(run_dir) == "failed"
    monkeypatch.delenv("FAKE_AREAL_FAIL_AT")
    assert run_trail_dir(run_dir) == "done"      # the fake restarts from step 0 in a new event file
    steps = [r["step"] for r in read_records(run_dir)]
    assert steps == [1, 2, 3, 4, 5]


def test_a_step_areal_never_logged_is_named_unlogged_and_the_trail_is_complete(tmp_path, fake_checkout,
                                                                               monkeypatch):
    from harness.store.rundir import RunDir

    monkeypatch.setenv("FAKE_AREAL_SKIP_STEP", "3")
    run_dir = _trail_dir(tmp_path, fake_checkout)
    assert run_trail_dir(run_dir) == "done"
    assert [r["step"] for r in read_records(run_dir)] == [1, 2, 4, 5]
    status = read_status(run_dir)
    assert status["unlogged"] == [3]
    assert "AReaL wrote no stats for step 3" in status["reason"] and "recover" in status["reason"]
    assert RunDir(run_dir).is_complete() and RunDir(run_dir).lost_steps() == []


def test_a_later_run_that_logs_the_step_fills_the_hole_and_clears_unlogged(tmp_path, fake_checkout, monkeypatch):
    monkeypatch.setenv("FAKE_AREAL_SKIP_STEP", "3")
    run_dir = _trail_dir(tmp_path, fake_checkout)
    assert run_trail_dir(run_dir) == "done"
    monkeypatch.delenv("FAKE_AREAL_SKIP_STEP")
    (run_dir / "status.json").unlink()   # run afresh: the fake logs every step this time
    (run_dir / "journal.jsonl").unlink()
    assert run_trail_dir(run_dir) == "done"
    assert "unlogged" not in read_status(run_dir) and read_status(run_dir).get("reason", "") == ""
    # the first run's event file (without step 3) is still there: the journal follows the newer file, hole filled
    assert [r["step"] for r in read_records(run_dir)] == [1, 2, 3, 4, 5]


def test_missing_checkout_or_python_fails_with_a_clear_reason(tmp_path, fake_checkout):
    run_dir = _trail_dir(tmp_path, tmp_path / "no-such-checkout")
    assert run_trail_dir(run_dir) == "failed"
    assert "does not exist (set engine.areal_path)" in read_status(run_dir)["reason"]
    run_dir = _trail_dir(tmp_path, fake_checkout, ["engine.python=/nonexistent/python3", "seed=2"])
    assert run_trail_dir(run_dir) == "failed"
    assert "engine.python" in read_status(run_dir)["reason"]


def test_preflight_reports_each_trail_when_areal_cannot_be_run(tmp_path, fake_checkout):
    from harness.engines.areal.engine import preflight

    cfgs = [compose_trail(["engine=areal", f"engine.areal_path={fake_checkout}", "engine.python=/nonexistent/py",
                           f"stale={s}"]) for s in (1, 2)]
    errors = preflight(make_trails([(c, []) for c in cfgs]))
    assert len(errors) == 2 and all("was not found (set engine.python)" in e for e in errors)
    cfg = compose_trail(["engine=areal", f"engine.areal_path={tmp_path / 'nope'}"])
    assert "does not exist" in preflight(make_trails([(cfg, [])]))[0]
    cfg = compose_trail(["engine=areal", f"engine.areal_path={tmp_path / 'nope'}", "engine.preflight=false"])
    assert preflight(make_trails([(cfg, [])])) == []


def _alive(pids) -> list:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def test_stop_ends_areals_group_and_the_marked_processes_that_left_it(tmp_path):
    import os
    import subprocess
    import time

    from harness.engines.areal import processes

    mark = str(tmp_path / "run")
    proc = subprocess.Popen(["bash", "-c", "sleep 300 & setsid sleep 301 & wait"], start_new_session=True,
                            env={**os.environ, processes.MARK: mark})
    def outside() -> list:
        """The marked processes outside AReaL's group (setsid leaves it a moment after it starts)."""
        left = []
        for pid in processes.marked(mark):
            try:
                if os.getpgid(pid) != proc.pid:
                    left.append(pid)
            except ProcessLookupError:
                pass
        return left

    deadline = time.monotonic() + 10
    while (len(processes.marked(mark)) < 3 or not outside()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = processes.marked(mark)
    assert len(pids) == 3, pids
    assert len(outside()) == 1, "one of them runs in a session of its own, out of reach of killpg"
    processes.stop(proc, mark, grace_s=2.0)
    assert _alive(pids) == [] and processes.marked(mark) == []


def test_stop_asks_areal_first_with_its_own_ctrl_c(tmp_path):
    """AReaL's trainer flushes its TensorBoard writer when a Ctrl-C unwinds it: stop() sends SIGINT to the main
    process and gives it time before SIGTERM."""
    import subprocess

    from harness.engines.areal import processes

    flushed = tmp_path / "flushed"
    script = (f"import signal, sys, time\n"
              f"def closing(signum, frame):\n"
              f"    time.sleep(1)\n"   # a close that takes a moment
              f"    open({str(flushed)!r}, 'w').write(signal.Signals(signum).name)\n"
              f"    sys.exit(0)\n"
              f"signal.signal(signal.SIGINT, closing)\n"
              f"print('ready', flush=True)\n"
              f"time.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, stdout=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, processes.MARK: str(tmp_path)})
    assert proc.stdout.readline().strip() == "ready"
    processes.stop(proc, str(tmp_path))
    assert flushed.read_text() == "SIGINT" and proc.returncode == 0


def test_stopping_areal_fits_in_the_time_a_cancelled_worker_gets():
    """SIGINT's grace, SIGTERM's and the last sweep of marked processes, with room to spare: a worker SIGKILLed by
    the local backend before it has stopped AReaL would leave AReaL's session running."""
    from harness.backends.pool import STOP_WAIT_S
    from harness.engines.areal.processes import INT_GRACE_S, TERM_GRACE_S

    assert INT_GRACE_S + 2 * TERM_GRACE_S + 5.0 <= STOP_WAIT_S


def test_hung_areal_is_stopped_at_the_timeout_with_nothing_left(tmp_path, fake_checkout, monkeypatch):
    from harness.engines.areal import processes

    monkeypatch.setenv("FAKE_AREAL_HANG", "1")
    run_dir = _trail_dir(tmp_path, fake_checkout, ["engine.timeout_s=6", "engine.total_train_steps=2"])
    assert run_trail_dir(run_dir) == "failed"
    assert "ran past engine.timeout_s=6 s" in read_status(run_dir)["reason"]
    assert [r["step"] for r in read_records(run_dir)] == [1]   # step 2 may be incomplete: it is not journaled
    assert processes.marked(str(run_dir.resolve())) == []
