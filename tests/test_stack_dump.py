"""`kill -USR1` on a harness process prints where each of its threads is and leaves it running (harness.logs)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, signal, threading
from harness.logs import dump_stacks_on_sigusr1
dump_stacks_on_sigusr1()
def waiting_in_a_helper_thread():
    threading.Event().wait(5)
helper = threading.Thread(target=waiting_in_a_helper_thread, daemon=True)
helper.start()
os.kill(os.getpid(), signal.SIGUSR1)
print("still running")
"""


def test_sigusr1_prints_every_threads_stack_and_the_process_goes_on():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "still running"
    assert "waiting_in_a_helper_thread" in proc.stderr
    assert "Current thread" in proc.stderr and proc.stderr.count("hread 0x") >= 2, proc.stderr


def test_the_harness_command_worker_and_tracker_register_it():
    import inspect

    from harness import cli
    from harness.backends import worker
    from harness.tracking import tracker

    for module in (cli, worker, tracker):
        assert "dump_stacks_on_sigusr1()" in inspect.getsource(module.main), module.__name__
