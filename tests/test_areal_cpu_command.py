"""engine.device=cpu: AReaL's command with what a CPU needs, applied only in that mode; the bundled example; the tiny
task's paths; the shipped areal_cpu sweep. No AReaL needed (tests marked areal_real run it for real)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from harness.engines.areal import cpu
from harness.engines.areal.command import BUNDLED_EXAMPLES, build_command
from harness.engines.areal.tiny_task import task_dir
from harness.errors import HarnessError
from harness.spec.compose import compose_trail
from harness.spec.sweepspec import build_spec, build_trails

# `git ls-tree v1.0.4 examples/math` in inclusionAI/AReaL
UPSTREAM_BLOBS = {
    "examples/math/gsm8k_rl.py": "4dbed5fa601fdcdeee8ad1624d5dec5e486ebc9f",
    "examples/math/gsm8k_grpo.yaml": "18264f920a463f3cf4cbe56456baedb1a3e64a94",
    "examples/math/gsm8k_m2po.yaml": "ae8fd03641d94923c7705c120ee5a13e4b2da797",
}
CPU = ["engine=areal", "tracking=none", "engine.device=cpu", "engine.rollout_backend=vllm", "alloc=d1+d1"]


def _cmd(overrides, run_dir: Path = Path("/runs/areal_cpu/t1")):
    cfg = compose_trail(["engine=areal", "tracking=none", *overrides])
    return build_command(cfg, run_dir, "areal_cpu", "stale0-d1+d1-rollout8-ab12cd", overrides)


def _keys(overrides):
    return {o.split("=", 1)[0].lstrip("+"): o.split("=", 1)[1] for o in overrides}


def test_cpu_mode_adds_the_cpu_changes_and_runs_through_the_entry_wrapper():
    cmd = _cmd([*CPU[2:], "algo=m2po", "stale=4", "rollout=2"])
    keys = _keys(cmd.overrides)
    assert cmd.argv[1] == str(cpu.CPU_ENTRY) and cmd.launcher == [str(cpu.CPU_ENTRY)]
    assert cmd.entry_args[:3] == ["examples/math/gsm8k_rl.py", "--config", "examples/math/gsm8k_m2po.yaml"]
    assert keys["cluster.n_gpus_per_node"] == "0" and keys["actor.scheduling_spec.0.gpu"] == "0"
    assert keys["rollout.backend"] == "vllm:d1p1t1" and keys["actor.backend"] == "fsdp:d1p1t1"
    assert keys["actor.attn_impl"] == "sdpa" and keys["actor.dtype"] == "float32"
    assert keys["vllm.enforce_eager"] == "true" and keys["scheduler.type"] == "local"
    assert keys["rollout.max_head_offpolicyness"] == "4" and keys["rollout.max_concurrent_rollouts"] == "2"
    assert keys["cluster.name_resolve.nfs_record_root"] == "/runs/areal_cpu/t1/name_resolve"
    assert cmd.env["PYTHONPATH"].split(os.pathsep)[0] == str(cpu.VLLM_CPU_SITE)
    assert cmd.env["VLLM_CPU_KVCACHE_SPACE"] == "1" and cmd.env["HARNESS_AREAL_STARTUP_TIMEOUT_S"] == "600.0"
    assert len(cmd.overrides) == len(keys), "no AReaL key is given twice"
    shell = cmd.shell()
    assert shell.startswith("cd ") and " env " in shell and "VLLM_CPU_KVCACHE_SPACE=1" in shell


def test_gpu_command_stays_areals_own():
    gpu = _cmd(["algo=m2po", "stale=4", "rollout=2", "alloc=d1+d1"])
    assert gpu.launcher == [] and gpu.env == {}
    assert gpu.argv[1:4] == ["examples/math/gsm8k_rl.py", "--config", "examples/math/gsm8k_m2po.yaml"]
    keys = _keys(gpu.overrides)
    for key, _value, _why in cpu.CPU_OVERRIDES:
        assert key not in keys, key
    assert keys["cluster.n_gpus_per_node"] == "2" and keys["rollout.backend"] == "sglang:d1p1t1"
    assert "cluster.name_resolve.nfs_record_root" not in keys
    assert "env" not in gpu.shell().split()


def test_every_cpu_change_says_why():
    assert all(why.strip() for _key, _value, why in cpu.CPU_OVERRIDES)
    lines = Path(cpu.__file__).read_text().splitlines()
    for key, _value, _why in cpu.CPU_OVERRIDES:   # each sits under a comment naming the AReaL/vLLM file it is about
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(f'("{key}"'))
        while not lines[at - 1].strip().startswith("#"):   # entries of one group share their comment
            at -= 1
        comment = []
        while lines[at - 1].strip().startswith("#"):
            at -= 1
            comment.append(lines[at])
        assert any(".py" in line or ".yaml" in line for line in comment), key


def test_null_areal_path_runs_the_bundled_areal_example(tmp_path):
    cmd = _cmd([*CPU[2:], "engine.areal_path=null"], tmp_path / "t1")
    assert cmd.cwd == str(BUNDLED_EXAMPLES)
    for rel in (cmd.entry_args[0], cmd.entry_args[2]):
        assert (BUNDLED_EXAMPLES / rel).is_file(), rel
    # the GPU command can run it too: the files are AReaL's own (v1.0.4), not CPU versions
    assert "37d6c6400e99a05fa3409d6a067762a44df40d3b" in (BUNDLED_EXAMPLES / "README.md").read_text()
    text = (BUNDLED_EXAMPLES / "examples/math/gsm8k_m2po.yaml").read_text()
    assert "m2_threshold: 0.04" in text and "attn_impl" not in text and "dtype: bfloat16" in text
    for rel, blob in UPSTREAM_BLOBS.items():   # byte for byte AReaL's files: their git blob ids at v1.0.4
        data = (BUNDLED_EXAMPLES / rel).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob, rel


def test_tiny_task_points_areal_at_the_cache_and_keeps_the_hub_offline(tmp_path):
    cmd = _cmd([*CPU[2:], "engine.tiny_task=true", f"engine.cache_dir={tmp_path}"])
    keys = _keys(cmd.overrides)
    root = task_dir(compose_trail([*CPU, "engine.tiny_task=true", f"engine.cache_dir={tmp_path}"]).engine)
    assert root.parent == tmp_path
    assert keys["actor.path"] == str(root / "model") and keys["train_dataset.path"] == str(root / "gsm8k")
    assert "gsm8k" in Path(keys["valid_dataset.path"]).name   # AReaL's loader dispatches on the folder name
    assert cmd.env["HF_HUB_OFFLINE"] == "1" and cmd.env["HF_DATASETS_OFFLINE"] == "1"


def test_user_overrides_still_come_last_in_cpu_mode():
    cmd = _cmd([*CPU[2:], "engine.overrides=['++vllm.max_num_seqs=4']"])
    assert cmd.overrides[-1] == "++vllm.max_num_seqs=4"


@pytest.mark.parametrize("overrides,message", [
    (["engine.device=tpu"], "gpu | cpu"),
    (["engine.device=cpu"], "vllm with engine.device=cpu"),
    ([*CPU[2:], "engine.n_nodes=2"], "1 with engine.device=cpu"),
    ([*CPU[2:], "engine.n_gpus_per_node=2"], "null or 0 with engine.device=cpu"),
    ([*CPU[2:], "engine.timeout_s=0"], "> 0, or null"),
])
def test_invalid_cpu_settings_fail_at_composition(overrides, message):
    with pytest.raises(HarnessError, match=message.replace("|", r"\|")):
        compose_trail(["engine=areal", "tracking=none", *overrides])


def test_the_shipped_areal_cpu_sweep_covers_stale_rollout_and_both_algorithms(tmp_path):
    trails = build_trails(build_spec(["areal_cpu", "engine.python=/nonexistent/python"]))
    cells = {(t.cfg.algo.name, t.cfg.algo.variant, t.cfg.stale, t.cfg.rollout) for t in trails}
    assert len(cells) == len(trails) == 3
    assert {c[2] for c in cells} == {0, 4} and {c[3] for c in cells} == {8, 2}
    assert {c[:2] for c in cells} == {("grpo", "decoupled"), ("m2po", "areal")}
    for trail in trails:
        assert trail.cfg.engine.device == "cpu" and trail.cfg.engine.tiny_task and trail.cfg.backend.max_parallel == 1
        cmd = build_command(trail.cfg, tmp_path / trail.dirname, "areal_cpu", trail.dirname, trail.overrides)
        keys = _keys(cmd.overrides)
        assert keys["rollout.enable_rollout_tracing"] == "true" and keys["recover.mode"] == "auto"
        assert cmd.cwd == str(BUNDLED_EXAMPLES)


AREAL_LOG = """\
(AReaL) 20261207-04:15:58.086 RolloutController INFO: Submit rollout. enqueued: 0, running: 4, accepted: 0, rejected: 0.
(AReaL) 20261207-04:16:35.838 RolloutController INFO: Submit rollout. enqueued: 17, running: 8, accepted: 3, \
rejected: 0.
(AReaL) 20261207-04:16:37.286 [RemoteInfEngine Rank 0] INFO: Submit rollout. enqueued: 0, running: 9, accepted: 12, \
rejected: 0.
(AReaL) 20261207-04:17:00.444 StatsLogger INFO: Epoch 1/10 Step 1/16 Train step 1/160 done.
"""


def test_areals_rollout_counters_are_read_from_its_controllers_lines(tmp_path):
    from harness.engines.areal.rollout_stats import max_running, read_submissions

    log = tmp_path / "areal.log"
    log.write_text(AREAL_LOG)
    assert [s.running for s in read_submissions(log)] == [4, 8]
    assert [s.source for s in read_submissions(log, source=None)][-1] == "[RemoteInfEngine Rank 0]"
    assert max_running(log) == 8
    log.write_text("no tracing here\n")
    assert max_running(log) is None
