"""engine.tiny_task: the tiny policy, tokenizer and GSM8K-format dataset of an offline AReaL run, built once and cached.

Why: a real AReaL run needs a Hugging Face model folder and a dataset AReaL's GSM8K loader reads; the hub's are out of
reach on an offline machine (CI) and far too large for a CPU. areal_side/tiny_task.py builds both in AReaL's own
Python (it needs transformers and tokenizers, which the harness does not); the folder is keyed by a hash of that
script, built under an exclusive lock into a temporary folder and renamed into place, so concurrent trails build it
once and a reader never sees half of it. A sweep on this machine builds it before its trails start (`prepare`).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from harness.engines.areal.cpu import AREAL_SIDE
from harness.errors import HarnessError
from harness.plugins import Say
from harness.spec.trails import Trail

BUILDER = AREAL_SIDE / "tiny_task.py"
DEFAULT_CACHE = "~/.cache/harness"
BUILD_TIMEOUT_S = 900   # AReaL's Python imports transformers and torch (about a minute on a loaded 2-core machine)


def cache_dir(eng: Any) -> Path:
    """engine.cache_dir if set, else $HARNESS_CACHE_DIR, else ~/.cache/harness."""
    raw = str(eng.get("cache_dir") or "") or os.environ.get("HARNESS_CACHE_DIR") or DEFAULT_CACHE
    return Path(os.path.expanduser(raw))


def task_dir(eng: Any) -> Path:
    key = hashlib.sha256(BUILDER.read_bytes()).hexdigest()[:12]
    return cache_dir(eng) / f"areal-tiny-{key}"


def tiny_task_overrides(eng: Any) -> List[Tuple[str, object]]:
    """(AReaL key, value) that point the run at the tiny task (the folder need not exist yet)."""
    root = task_dir(eng)
    dataset = root / "gsm8k"
    return [
        ("actor.path", root / "model"),           # tokenizer_path, ref.path and the servers' model follow it
        ("train_dataset.path", dataset),
        ("valid_dataset.path", dataset),
        # the model's max_position_embeddings; vLLM refuses a longer max_model_len (the yamls ask 32768)
        ("vllm.max_model_len", 1024),
    ]


def offline_env() -> Dict[str, str]:
    """Everything of a tiny-task run is local: the hub libraries must not try the network."""
    return {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def ensure_built(eng: Any, on_wait: Optional[Callable[[], None]] = None) -> Optional[Dict[str, Any]]:
    """Build the tiny task unless it is there; its task.json if this call built it, else None."""
    path = task_dir(eng)
    if (path / "task.json").exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (path / "task.json").exists():
                return None
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                proc = subprocess.run([str(eng.python), str(BUILDER), str(tmp)], capture_output=True, text=True,
                                      timeout=BUILD_TIMEOUT_S, env={**os.environ, **offline_env()},
                                      stdin=subprocess.DEVNULL)
            except FileNotFoundError as exc:
                raise HarnessError(f"cannot build the tiny task: engine.python={eng.python!r} not found") from exc
            if proc.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
                raise HarnessError(f"building the tiny task with {eng.python} failed: {tail}")
            os.replace(tmp, path)
            return json.loads((path / "task.json").read_text(encoding="utf-8"))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare(trails: Sequence[Trail], say: Say) -> None:
    """The AReaL engine's `prepare` hook: the tiny task of every engine config that asks for one, built unless
    cached. A failure is said and left to the trails, which meet it again and record it."""
    configs: Dict[Path, Any] = {}
    for trail in trails:
        if trail.cfg.engine.get("tiny_task"):
            configs.setdefault(task_dir(trail.cfg.engine), trail.cfg.engine)
    for path, eng in configs.items():
        started = time.monotonic()
        try:
            info = ensure_built(eng, on_wait=functools.partial(say, "tiny task", "another process builds it; waiting"))
        except HarnessError as exc:
            say("tiny task", f"not built, its trails will try themselves: {exc}")
            continue
        if info is None:
            say("tiny task", f"cached: {path}")
        else:
            say("tiny task", f"built in {time.monotonic() - started:.0f} s: Qwen2 of {info['parameters']:,} "
                             f"parameters, vocabulary {info['vocab']}, {info['train']} train and {info['test']} test "
                             f"problems → {path}")
