"""The base model every trail starts from: supervised pretraining to a modest accuracy, built once and cached on disk.

Why modest, and why a systematic error: RL needs signal (some sampled answers right, some wrong) and room to learn.
Most pretraining answers (1 − `base_format_frac`) are informal (' so N'), which the strict GSM8K reward scores 0, so
the base model answers greedily in the wrong format and scores about 0 strict, while its sampled answers carry the
GSM8K format often enough for the reward to find and reinforce it; RL then also improves the arithmetic. Pretraining
stops when greedy accuracy on a probe set, read in any answer format (the arithmetic skill alone), reaches
`base_target_acc` (checked every `base_check_every` steps). The rule reads the mean of the last PROBE_WINDOW probes,
not the last one, because single probes are noisy (0.289 -> 0.312 -> 0.289 -> 0.355 over four checks).
`base_ema` > 0 makes the base model an exponential moving average of the pretraining weights (Polyak-Ruppert
averaging, Polyak & Juditsky 1992; the "EMA of weights" LM trainers keep), probed and kept instead of the raw
weights: at a constant learning rate the raw weights jitter around what training has learned, and the average is
what a decaying rate would reach, for one `lerp` per step. It reaches the probe target sooner (decay 0.99, probed
every 50 steps: 650 steps instead of 1,000, about two thirds of the CPU) but it is another base model for RL: it is
surer of the informal format (0.045-0.078 strict reward sampled on the eval set, against about 0.12), on-policy GRPO
lifts it to only 0.37-0.43 in 800 steps (0.64 from the raw weights) and GRPO's drop at lag 256 vanished in 5 paired
seeds. The study keeps the raw weights (the default, 0); the option is there for a faster base where that matters.
Why cached: every trail of a sweep must start from the same weights, and pretraining costs more than a trail. The
cache key is a hash of everything that determines the weights; several trails starting at once take an fcntl lock,
one builds, the rest wait and load, and the file appears by atomic rename so a reader never sees half of it. A sweep
on this machine builds it before its trails start (harness.engines.embedded.prepare), so no trail spends its time on
it.

Pretraining always runs on BUILD_THREADS torch threads, whoever builds: torch splits a float sum over its threads, so
the weights depend on the thread count (on a 2-core machine 200 steps on 1 and on 2 threads end up to 0.16 apart per
weight, with different probe accuracies), and the cache key must be all that decides them.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import random
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import torch

from harness.engines.embedded.config import ModelConfig
from harness.engines.embedded.model import (
    BOS,
    EOS,
    PAD,
    TinyGPT,
    decode_rows,
    encode,
    pad_prompts,
    sample,
    sequence_logprobs,
)
from harness.engines.embedded.task import INFORMAL_PREFIX, TASK_FORMAT, Problem, ProblemSet, reward
from harness.engines.embedded.train import Adam
from harness.errors import HarnessError

BASE_FORMAT = 4  # bump when pretraining code changes what the weights are
PROBE_WINDOW = 3  # the stop rule averages this many consecutive probes
BUILD_THREADS = 1  # torch threads while pretraining (the weights depend on it; see above)
DEFAULT_CACHE = "~/.cache/harness/base_models"


def base_spec(eng: Any) -> Dict[str, Any]:
    """Everything that determines the base weights (and nothing that does not, so trails share one model)."""
    keys = ("n_layer", "n_embd", "n_head", "block_size", "difficulty", "max_number", "task_seed", "base_seed",
            "base_target_acc", "base_max_steps", "base_check_every", "base_lr", "base_batch", "max_new_tokens",
            "base_format_frac")
    spec = {k: eng[k] for k in keys}
    ema = float(eng.get("base_ema", 0.0))
    if ema > 0:  # at its neutral value it stays out, so caches built before it stay valid
        spec["base_ema"] = ema
    spec["format"] = BASE_FORMAT
    spec["task_format"] = TASK_FORMAT
    return spec


def cache_dir(eng: Any) -> Path:
    """engine.cache_dir if set, else $HARNESS_CACHE_DIR, else ~/.cache/harness/base_models."""
    raw = str(eng.get("cache_dir") or "") or os.environ.get("HARNESS_CACHE_DIR") or DEFAULT_CACHE
    return Path(os.path.expanduser(raw))


def cache_path(eng: Any) -> Path:
    key = hashlib.sha256(json.dumps(base_spec(eng), sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir(eng) / f"base-{key}.pt"


def target_text(problem: Problem, rng: random.Random, format_frac: float) -> str:
    """The pretraining answer: GSM8K's ' #### N' with probability `format_frac`, else the informal ' so N'."""
    if rng.random() < format_frac:
        return " " + problem.answer
    return " " + INFORMAL_PREFIX + str(problem.value)


def target_ids(text: str) -> list:
    return encode(text) + [EOS]


@torch.no_grad()
def greedy_accuracy(model: TinyGPT, problems: ProblemSet, n: int, max_new: int, batch: int = 256,
                    flexible: bool = False) -> float:
    """Share of the first `n` problems answered right greedily: by the strict GSM8K reward, or with `flexible` by the
    last number of the completion whatever its format (lm-eval's flexible-extract), i.e. arithmetic skill alone."""
    right = 0.0
    for lo in range(0, n, batch):
        probs = [problems[i] for i in range(lo, min(n, lo + batch))]
        ids = pad_prompts([[BOS] + encode(p.question) for p in probs])
        tokens, _, _ = sample(model, ids, 1, max_new, 0.0, None)
        right += sum(reward(text, p, flexible) for text, p in zip(decode_rows(tokens), probs, strict=True))
    return right / n


def pretraining_batch(data: ProblemSet, start: int, batch: int, fmt_rng: random.Random, format_frac: float
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Problems start..start+batch-1 of the pretraining stream as (left-padded prompts [B, Lp], target answers
    [B, La] padded with PAD, their valid-token mask); `fmt_rng` draws each answer's format."""
    probs = [data[start + i] for i in range(batch)]
    ids = pad_prompts([[BOS] + encode(p.question) for p in probs])
    targets = [target_ids(target_text(p, fmt_rng, format_frac)) for p in probs]
    width = max(len(t) for t in targets)
    tok = torch.tensor([t + [PAD] * (width - len(t)) for t in targets], dtype=torch.long)
    mask = torch.tensor([[True] * len(t) + [False] * (width - len(t)) for t in targets])
    return ids, tok, mask


def pretraining_step(model: TinyGPT, opt: Adam, ids: torch.Tensor, tok: torch.Tensor, mask: torch.Tensor
                     ) -> torch.Tensor:
    """One supervised step: mean negative log-likelihood of the answer tokens, clipped at gradient norm 1, one Adam
    step. Returns the loss (before the step)."""
    logp, _ = sequence_logprobs(model, ids, 1, tok, mask=mask)
    loss = -(logp * mask).sum() / mask.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch on `n` intra-op threads within the block, and as it was after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pretrain(eng: Any, log: Callable[[str], object] = print) -> Tuple[TinyGPT, Dict[str, Any]]:
    """See _pretrain; always on BUILD_THREADS threads, so the weights do not depend on the caller's thread count."""
    with torch_threads(BUILD_THREADS):
        return _pretrain(eng, log)


def _pretrain(eng: Any, log: Callable[[str], object]) -> Tuple[TinyGPT, Dict[str, Any]]:
    """Supervised pretraining on question → answer until the mean of the last PROBE_WINDOW greedy probe accuracies
    (any answer format) is ≥ base_target_acc. The loss is on the answer tokens only; the question is a prompt, and the
    forward spends on its positions only what the answer's positions read (their keys and values).

    Like a real base model, it does not answer in the format the grader wants: a fraction 1 − base_format_frac of its
    pretraining answers are informal (' so N'), which the strict GSM8K reward scores 0. RL can then fix the format
    (fast) and improve the arithmetic (slow). Log-probs are at temperature 1 (a likelihood, not a sampler)."""
    fmt_rng = random.Random(f"format/{eng.base_seed}")
    torch.manual_seed(int(eng.base_seed))
    model = TinyGPT(ModelConfig.of(eng))
    opt = Adam(list(model.parameters()), lr=float(eng.base_lr))  # = AdamW with weight_decay 0, without its import
    decay = float(eng.base_ema)
    average = copy.deepcopy(model).requires_grad_(False) if decay > 0 else model  # what is probed and kept
    trained: List[torch.Tensor] = list(model.parameters())
    averaged: List[torch.Tensor] = list(average.parameters())
    data = ProblemSet(f"{eng.task_seed}", "pretrain", int(eng.difficulty), int(eng.max_number))
    probe = ProblemSet(f"{eng.task_seed}", "probe", int(eng.difficulty), int(eng.max_number))
    batch, cursor, step, t0 = int(eng.base_batch), 0, 0, time.time()
    probes: list = []
    smoothed = 0.0
    for step in range(1, int(eng.base_max_steps) + 1):
        ids, tok, mask = pretraining_batch(data, cursor, batch, fmt_rng, float(eng.base_format_frac))
        cursor += batch
        loss = pretraining_step(model, opt, ids, tok, mask)
        if decay > 0:
            with torch.no_grad():
                torch._foreach_lerp_(averaged, trained, 1.0 - decay)
        if step % int(eng.base_check_every) == 0:
            probes.append(greedy_accuracy(average, probe, 256, int(eng.max_new_tokens), flexible=True))
            window = probes[-PROBE_WINDOW:]
            smoothed = sum(window) / len(window)
            log(f"pretraining step {step} of at most {int(eng.base_max_steps)}: loss {loss.item():.3f}, greedy probe "
                f"accuracy in any answer format {probes[-1]:.3f}, mean of the last {len(window)} {smoothed:.3f} "
                f"(stops at {float(eng.base_target_acc):g})")
            if len(window) == PROBE_WINDOW and smoothed >= float(eng.base_target_acc):
                break
    strict = greedy_accuracy(average, probe, 256, int(eng.max_new_tokens))
    log(f"pretrained: {step} steps, greedy probe accuracy {smoothed:.3f} in any format, {strict:.3f} by the strict "
        f"GSM8K reward")
    info = {"steps": step, "probe_accuracy": smoothed, "probe_strict_accuracy": strict, "probes": probes,
            "seconds": time.time() - t0,
            "params": sum(p.numel() for p in model.parameters())}
    return average.requires_grad_(True), info


class UnreadableFile(HarnessError):
    """A checkpoint or cached base model that does not load as tensors and plain containers. It is never loaded any
    other way: a pickle that needs Python globals can run code on load, and a torn file holds nothing to trust."""


def _why_unreadable(exc: Exception) -> str:
    """One clause for the error, without torch's advice to retry with weights_only=False."""
    text = str(exc)
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        detail = f" (it needs {found.group(1)})" if found else ""
        return f"it holds Python objects, not only tensors and plain containers{detail}; refused, since loading " \
               f"them could run code"
    first = text.split(". ")[0].splitlines()[0] if text else type(exc).__name__
    return f"it is corrupt or truncated ({first})"


def load_tensors(path: Path, what: str, keys: Iterable[str], remedy: str) -> Dict[str, Any]:
    """torch.load with weights_only=True: a dict holding `keys`, or UnreadableFile naming the file and `remedy`."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, OSError, ...
        if isinstance(exc, OSError) and exc.filename is not None:  # the file system's own error: reported as it is
            raise
        raise UnreadableFile(f"{path}: cannot read this {what}: {_why_unreadable(exc)}. {remedy}") from None
    missing = [k for k in keys if not isinstance(blob, dict) or k not in blob]
    if missing:
        raise UnreadableFile(f"{path}: cannot read this {what}: it lacks {', '.join(missing)}. {remedy}")
    return blob


def ensure_built(eng: Any, log: Callable[[str], object] = print,
                 on_wait: Optional[Callable[[], None]] = None) -> Optional[Dict[str, Any]]:
    """Build the cached base model for this engine config unless it is there; the pretraining summary if this call
    built it, else None. Builds under an exclusive lock; `on_wait` is called if another process holds it (building the
    same model), and this call then waits for it."""
    path = cache_path(eng)
    if path.exists():
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot make the base-model cache directory {path.parent}: {exc.strerror or exc} "
                           f"(set HARNESS_CACHE_DIR, or engine.cache_dir, to a writable directory; the default is "
                           f"{DEFAULT_CACHE} under $HOME)") from None
    with open(path.with_suffix(".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(lock, fcntl.LOCK_EX)  # the first process builds; the others wait here, then load
        try:
            if path.exists():
                return None
            model, info = pretrain(eng, log)
            info["spec"] = base_spec(eng)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            torch.save({"state": model.state_dict(), "info": info}, tmp)
            os.replace(tmp, path)
            return info
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_or_build(eng: Any, log: Callable[[str], object] = print) -> Tuple[TinyGPT, Dict[str, Any]]:
    """The cached base model for this engine config; builds it under an exclusive lock if it is not there yet."""
    ensure_built(eng, log)
    path = cache_path(eng)
    remedy = f"Delete {path}: the next run rebuilds it."
    blob = load_tensors(path, "base-model cache file", ("state", "info"), remedy)
    model = TinyGPT(ModelConfig.of(eng))
    check_identity(path, blob, eng, model, remedy)
    model.load_state_dict(blob["state"])
    return model, blob["info"]


def check_identity(path: Path, blob: Dict[str, Any], eng: Any, model: TinyGPT, remedy: str) -> None:
    """The cache file is the base model of this engine config (its recorded spec) and of this model's shapes; else
    one line naming the file, what it is, and `remedy` (a file copied or renamed into the cache is never loaded)."""
    info = blob["info"] if isinstance(blob["info"], dict) else {}
    spec, want = info.get("spec"), base_spec(eng)
    if isinstance(spec, dict) and spec != want:
        differ = sorted(k for k in set(spec) | set(want) if spec.get(k) != want.get(k))
        raise UnreadableFile(f"{path}: this base-model cache file was built for another engine config ("
                             f"{differ[0]}={spec.get(differ[0])!r} in the file, {want.get(differ[0])!r} here); "
                             f"refused. {remedy}")
    state = blob["state"] if isinstance(blob["state"], dict) else {}
    have = {k: list(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    need = {k: list(v.shape) for k, v in model.state_dict().items()}
    if have != need:
        differ = sorted(k for k in set(have) | set(need) if have.get(k) != need.get(k))
        raise UnreadableFile(f"{path}: this base-model cache file holds weights of other shapes than this engine "
                             f"config's model ({differ[0]}: {have.get(differ[0])} in the file, "
                             f"{need.get(differ[0])} here); refused. {remedy}")
