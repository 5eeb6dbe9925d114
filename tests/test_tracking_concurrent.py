"""Six trails, six processes, one sqlite store, all live-syncing at once: sqlite's writer lock must cost nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from harness.tracking.config import TrackingConfig
from harness.tracking.sweep_run import ensure_sweep_run

from tracking_support import assert_exactly_once, cache_dir_of, fresh_store, make_sweep, run_id_of

TRAIL = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from harness.rundir import write_status
    from harness.tracking.config import TrackingConfig
    from harness.tracking.live import LiveSync
    from tracking_support import append_steps
    run_dir, seed = sys.argv[1], int(sys.argv[2])
    write_status(run_dir, "running")
    live = LiveSync(run_dir, TrackingConfig(uri={uri!r}, sync_every_s=0.02))
    live.start()
    for step in range(1, {steps} + 1):
        append_steps(run_dir, [step], seed=seed)
        if step % 10 == 0:
            time.sleep(0.01)
    write_status(run_dir, "done", ended=time.time())
    live.stop()
    print("errors", live.errors, "ticks", live.ticks)
""")


def test_six_processes_syncing_to_one_sqlite_store_lose_nothing(tmp_path, request):
    from mlflow.tracking import MlflowClient

    store = fresh_store(cache_dir_of(request), tmp_path / "store")
    names = [f"t{i}" for i in range(6)]
    sweep_dir = make_sweep(tmp_path / "runs", trails=names)
    assert ensure_sweep_run(sweep_dir, TrackingConfig(uri=store))
    steps = 120
    code = TRAIL.format(tests=str(request.path.parent), uri=store, steps=steps)
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(sweep_dir / n), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i, n in enumerate(names)]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outputs
    client = MlflowClient(tracking_uri=store)
    for i, name in enumerate(names):
        run_id = run_id_of(sweep_dir / name, store)
        assert run_id, outputs[i]
        assert_exactly_once(client, run_id, steps, seed=i)
        assert client.get_run(run_id).info.status == "FINISHED"
    assert time.monotonic() - started < 240
