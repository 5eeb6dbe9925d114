"""The embedded engine: one trail of RL on a tiny character transformer, on a CPU, in about a minute.

Loop per step: take the batch the staleness source says this step trains on (really sampled by the version it
records), update the policy with the chosen loss, evaluate on held-out problems every `eval_every` steps, append the
step's metrics to the journal, checkpoint every `checkpoint_every` steps. Before step 1 a record at step 0 holds the
base model's eval, as `eval/reward` and `eval/reward_sampled` (so every eval curve, in the report and in MLflow, starts
from the model RL started from) and as `base/reward`, `base/reward_sampled` (the name the report's lift reads). The
last step also carries the final evaluation on a large held-out set (`final/reward`, `final/reward_sampled`,
`final/eval_size`). Everything random draws from seeded generators whose state is checkpointed, so a trail killed and
resumed writes exactly the curves of one never stopped.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from omegaconf import DictConfig

from harness.engines import EngineResult, StepCallback
from harness.engines.embedded.base_model import UnreadableFile, load_or_build, load_tensors
from harness.engines.embedded.model import NonFinite
from harness.engines.embedded.rollout import Batch, generate
from harness.engines.embedded.staleness import AsyncSim, FixedLag, OneStepOffClock, WorkerModel
from harness.engines.embedded.task import ProblemSet, distinct_indices
from harness.engines.embedded.train import Trainer, evaluate
from harness.spec.axes import parse_alloc
from harness.spec.trails import trail_id
from harness.store.journal import Journal
from harness.store.metrics import (
    BASE_OF,
    EVAL_REWARD,
    EVAL_REWARD_SAMPLED,
    FINAL_EVAL_SIZE,
    FINAL_REWARD,
    FINAL_REWARD_SAMPLED,
    PERF_SEC_PER_STEP,
    PERF_TOKENS_PER_S,
    ROLLOUT_REWARD,
    STALENESS_MAX,
    STALENESS_MEAN,
    STALENESS_P95,
    TRAIN_VERSION,
    UPDATE_STATS,
)
from harness.store.safe_files import check_directory, check_regular
from harness.store.states import TrailState

CKPT_DIR = "checkpoint"
CKPT_FILE = "state.pt"
CKPT_KEYS = ("step", "model", "optim", "generator", "source")


def make_source(cfg: DictConfig) -> FixedLag | AsyncSim:
    """The trail's staleness source with its simulated clock (both modes: clock.py)."""
    eng = cfg.engine
    x, y = parse_alloc(cfg.alloc)
    if eng.staleness_mode == "fixed":
        model = WorkerModel(float(eng.rollout_worker_tokens_per_s), float(eng.rollout_half_saturation),
                            int(eng.group_size))
        clock = OneStepOffClock(int(cfg.stale), x, y, int(cfg.rollout), int(eng.group_size), model,
                                float(eng.train_worker_tokens_per_s))
        return FixedLag(int(cfg.stale), int(eng.steps), int(eng.batch_prompts), clock)
    return AsyncSim(int(cfg.stale), x, y, int(cfg.rollout), int(eng.batch_prompts), int(eng.group_size),
                    float(eng.rollout_worker_tokens_per_s), float(eng.train_worker_tokens_per_s),
                    half_saturation=float(eng.rollout_half_saturation))


def shapes(state: Dict[str, torch.Tensor]) -> Dict[str, List[int]]:
    """The shape of each tensor of a state dict: what a checkpoint must match to be loaded into a model."""
    return {key: list(value.shape) for key, value in state.items()}


def save_checkpoint(run_dir: Path, step: int, trainer: Trainer, gen: torch.Generator, source: Any) -> None:
    """Everything needed to resume at `step`, written atomically (temp file + rename), with whose it is: the trail's
    id (a hash of its config) and the policy's shapes. Tensors, numbers and plain containers only (the generator
    state is a ByteTensor, the source's batches are dicts), so it loads with weights_only=True."""
    path = Path(run_dir) / CKPT_DIR
    check_directory(path)  # a link is refused: the checkpoint is never written through one
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".{CKPT_FILE}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    model = trainer.policy.state_dict()
    torch.save({"step": step, "model": model, "optim": trainer.opt.state_dict(), "generator": gen.get_state(),
                "source": source.state(), "trail_id": trail_id(trainer.cfg), "shapes": shapes(model)}, tmp)
    os.replace(tmp, path / CKPT_FILE)


def load_checkpoint(run_dir: Path, cfg: Optional[DictConfig] = None,
                    model: Optional[torch.nn.Module] = None) -> Optional[Dict[str, Any]]:
    """The trail's checkpoint, or None. A file that does not load as tensors and plain containers raises
    UnreadableFile naming it; it is never unpickled, so a planted file cannot run code. Given the trail's `cfg` and
    `model`, a checkpoint of another trail, or of other shapes, is refused in one line naming the file, whose it is
    and what to do (a checkpoint written before checkpoints named their trail is checked by its shapes alone)."""
    path = Path(run_dir) / CKPT_DIR / CKPT_FILE
    check_directory(path.parent)
    if not check_regular(path):
        return None
    remedy = f"Delete the trail's checkpoint directory {path.parent} to start the trail over."
    blob = load_tensors(path, "checkpoint", CKPT_KEYS, remedy)
    if cfg is not None and blob.get("trail_id") not in (None, trail_id(cfg)):
        raise UnreadableFile(f"{path}: this checkpoint belongs to trail {blob['trail_id']}, not to this trail "
                             f"{trail_id(cfg)} (a run directory copied or moved?); refused. {remedy}")
    if model is not None:
        want, have = shapes(model.state_dict()), shapes(blob["model"]) if isinstance(blob["model"], dict) else {}
        if want != have:
            differ = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
            raise UnreadableFile(f"{path}: this checkpoint's policy has other shapes than this trail's ("
                                 f"{differ[0]}: {have.get(differ[0])} in the file, {want.get(differ[0])} here); "
                                 f"refused. {remedy}")
    return blob


def final_evaluation(policy: Any, eval_set: ProblemSet, cfg: DictConfig) -> Dict[str, float]:
    """The trail's final metric: greedy and sampled accuracy on the first `engine.final_eval_size` distinct eval-split
    problems (4,096 by default, eight times the intermediate evals' 512), so one trail's eval-set sampling SD is
    √(p(1−p)/4096) ≈ 0.008 rather than ≈ 0.022, a small share of the seed-to-seed spread it is compared with.
    Its sampling draw has a generator of its own, apart from every step eval's."""
    eng = cfg.engine
    indices = distinct_indices(eval_set, int(eng.final_eval_size))
    gen = torch.Generator().manual_seed(int(cfg.seed) * 1_000_003 + int(eng.steps) + 1)
    result = evaluate(policy, eval_set, 0, int(eng.max_new_tokens), float(eng.temperature), gen, indices=indices)
    return {FINAL_REWARD: result[EVAL_REWARD], FINAL_REWARD_SAMPLED: result[EVAL_REWARD_SAMPLED],
            FINAL_EVAL_SIZE: float(len(indices))}


def run(cfg: DictConfig, run_dir: Path, journal: Journal, on_step: StepCallback) -> EngineResult:
    eng = cfg.engine
    torch.set_num_threads(int(eng.threads))
    run_dir = Path(run_dir)
    steps, group = int(eng.steps), int(eng.group_size)
    base, _ = load_or_build(eng, log=lambda msg: print(f"base model: {msg}", flush=True))
    policy = copy.deepcopy(base)
    base.requires_grad_(False)
    train_set = ProblemSet(f"{eng.task_seed}", f"train/{cfg.seed}", int(eng.difficulty), int(eng.max_number))
    eval_set = ProblemSet(f"{eng.task_seed}", "eval", int(eng.difficulty), int(eng.max_number))
    trainer = Trainer(policy, cfg, train_set)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    source = make_source(cfg)
    start = 0
    ckpt = load_checkpoint(run_dir, cfg, policy)
    if ckpt is not None:
        policy.load_state_dict(ckpt["model"])
        trainer.opt.load_state_dict(ckpt["optim"])
        gen.set_state(ckpt["generator"])
        source.load(ckpt["source"])
        start = int(ckpt["step"])
        journal.close()
        journal.rewind(start)
    else:
        source.prompt_len = 1 + max(len(train_set[i].question) for i in range(64))

    def sample_batch(indices: List[int], version: int, use_base: bool) -> Batch:
        model = base if use_base else policy
        return generate(model, train_set, indices, group, int(eng.max_new_tokens), float(eng.temperature), gen,
                        version)

    # the starting point of every curve: the base model's eval as step 0 (a checkpoint resume keeps it; a start from
    # scratch writes it again, and the journal drops whatever an earlier attempt wrote from step 0 on)
    if start == 0:
        base_gen = torch.Generator().manual_seed(int(cfg.seed) * 1_000_003)
        base_eval = evaluate(base, eval_set, int(eng.eval_size), int(eng.max_new_tokens), float(eng.temperature),
                             base_gen)
        journal.append(0, {**base_eval, **{BASE_OF[key]: v for key, v in base_eval.items()}},
                       time=time.time())

    for t in range(start, steps):
        step = t + 1
        t0 = time.perf_counter()
        metrics: Dict[str, float] = {}
        reason = ""
        batch: Optional[Batch] = None
        updated = False
        try:
            batch = source.next_batch(t, sample_batch)
            stats = trainer.update(batch)
            updated = True
        except NonFinite as exc:
            reason = f"diverged at step {step}: {exc}"
            stats = {"loss": float("nan"), "grad_norm": float("nan")}
        metrics.update({name: stats[key] for key, name in UPDATE_STATS.items() if key in stats})
        metrics[TRAIN_VERSION] = float(step if updated else t)
        if batch is not None:
            staleness = [t - v for v in batch.versions]
            metrics[ROLLOUT_REWARD] = float(batch.rewards.mean())
            metrics[STALENESS_MEAN] = sum(staleness) / len(staleness)
            metrics[STALENESS_MAX] = float(max(staleness))
            metrics[STALENESS_P95] = float(np.percentile(staleness, 95))  # linear, as the report's p95
            metrics.update(source.stats)
        if not reason and (step % int(eng.eval_every) == 0 or step == steps):
            eval_gen = torch.Generator().manual_seed(int(cfg.seed) * 1_000_003 + step)
            try:
                metrics.update(evaluate(policy, eval_set, int(eng.eval_size), int(eng.max_new_tokens),
                                        float(eng.temperature), eval_gen))
            except NonFinite as exc:
                reason = f"diverged at step {step}: {exc} (eval)"
        if not reason and step == steps and int(eng.final_eval_size) > 0:
            try:
                metrics.update(final_evaluation(policy, eval_set, cfg))
            except NonFinite as exc:
                reason = f"diverged at step {step}: {exc} (final eval)"
        elapsed = time.perf_counter() - t0
        metrics[PERF_SEC_PER_STEP] = elapsed
        metrics[PERF_TOKENS_PER_S] = (batch.n_tokens if batch is not None else 0) / max(elapsed, 1e-9)
        journal.append(step, metrics, time=time.time())
        on_step(step, steps, metrics)
        if reason:
            journal.sync()
            return EngineResult(TrailState.DIVERGED, step, reason)
        if step % int(eng.checkpoint_every) == 0 and step < steps:
            journal.sync()
            save_checkpoint(run_dir, step, trainer, gen, source)
    return EngineResult(TrailState.DONE, steps, "")
