"""The journal's metric names: what each one means and in what unit. Engines write through these names; the report,
the progress display, the MLflow view and AReaL's ingest read through them.

Why one module: a metric is written in one place (an engine) and read in several (report tables and plots, the
progress line, the saved MLflow charts, AReaL's tag map). A name spelled twice can drift apart silently: a report
table would then show "—" for a metric the journal holds. Every name below is a constant, every constant has its
meaning and unit in `SCHEMA`, and tests/test_metric_schema.py holds the engines' journals and every reader to it.
docs/METRICS.md is this table in prose (a test keeps the two equal).

Names are `<group>/<name>`, MLflow's own convention for grouping charts. A step's record holds the metrics that step
produced: the eval metrics only at eval steps, `final/*` only at the last, `base/*` only at step 0. AReaL's own
TensorBoard tags that the harness does not map keep their name under `areal/` (KEPT_PREFIX).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class Metric:
    """A journal metric: its name, what it measures, and its unit."""

    name: str
    meaning: str
    unit: str


# evaluation on held-out problems
EVAL_REWARD = "eval/reward"
EVAL_REWARD_SAMPLED = "eval/reward_sampled"
BASE_REWARD = "base/reward"
BASE_REWARD_SAMPLED = "base/reward_sampled"
FINAL_REWARD = "final/reward"
FINAL_REWARD_SAMPLED = "final/reward_sampled"
FINAL_EVAL_SIZE = "final/eval_size"
# the policy update
TRAIN_LOSS = "train/loss"
TRAIN_GRAD_NORM = "train/grad_norm"
TRAIN_CLIP_FRAC = "train/clip_frac"
TRAIN_ENTROPY = "train/entropy"
TRAIN_APPROX_KL = "train/approx_kl"
TRAIN_IS_RATIO_MEAN = "train/is_ratio_mean"
TRAIN_VERSION = "train/version"
M2PO_MASKED_FRAC = "m2po/masked_frac"
M2PO_M2_BEFORE = "m2po/m2_before"
M2PO_M2_AFTER = "m2po/m2_after"
# the batch trained on
ROLLOUT_REWARD = "rollout/reward"
STALENESS_MEAN = "staleness/mean"
STALENESS_MAX = "staleness/max"
STALENESS_P95 = "staleness/p95"
# the simulated clock
SIM_TIME_S = "sim/time_s"
SIM_STEP_S = "sim/step_s"
SIM_ROLLOUT_BUSY_FRAC = "sim/rollout_busy_frac"
SIM_ROLLOUT_UTIL = "sim/rollout_util"
SIM_TRAINER_IDLE_FRAC = "sim/trainer_idle_frac"
SIM_GROUPS_IN_FLIGHT = "sim/groups_in_flight"
SIM_SAMPLES_PER_S = "sim/samples_per_s"
# this machine's cost
PERF_SEC_PER_STEP = "perf/sec_per_step"
PERF_TOKENS_PER_S = "perf/tokens_per_s"

KEPT_PREFIX = "areal/"  # AReaL's TensorBoard tags that no name here maps, kept as areal/<tag>

_FRACTION = "fraction of the eval problems"

SCHEMA: Dict[str, Metric] = {m.name: m for m in (
    Metric(EVAL_REWARD, "reward of the greedy answer on the eval problems", _FRACTION),
    Metric(EVAL_REWARD_SAMPLED, "reward of one sampled answer (the engine's temperature) on the eval problems",
           _FRACTION),
    Metric(BASE_REWARD, "eval/reward of the model RL starts from, at step 0", _FRACTION),
    Metric(BASE_REWARD_SAMPLED, "eval/reward_sampled of the model RL starts from, at step 0", _FRACTION),
    Metric(FINAL_REWARD, "greedy reward on the final eval's distinct problems, at the last step", _FRACTION),
    Metric(FINAL_REWARD_SAMPLED, "sampled reward on the final eval's distinct problems, at the last step", _FRACTION),
    Metric(FINAL_EVAL_SIZE, "how many distinct problems the final eval scored", "problems"),
    Metric(TRAIN_LOSS, "the policy loss of the update", "loss units"),
    Metric(TRAIN_GRAD_NORM, "global L2 norm of the gradient before clipping", "L2 norm"),
    Metric(TRAIN_CLIP_FRAC, "share of the batch's tokens whose importance ratio the loss clipped",
           "fraction of tokens"),
    Metric(TRAIN_ENTROPY, "mean entropy of the policy over the batch's tokens", "nats"),
    Metric(TRAIN_APPROX_KL, "mean of (r − 1) − log r over the tokens: KL(behaviour ‖ policy) estimate", "nats"),
    Metric(TRAIN_IS_RATIO_MEAN, "mean importance ratio r = π_θ / π_behaviour over the tokens", "ratio"),
    Metric(TRAIN_VERSION, "the policy version after the step (updates applied so far)", "updates"),
    Metric(M2PO_MASKED_FRAC, "share of the batch's tokens M2PO's second-moment mask dropped", "fraction of tokens"),
    Metric(M2PO_M2_BEFORE, "second moment of log r over the tokens before M2PO's mask", "(log ratio)²"),
    Metric(M2PO_M2_AFTER, "second moment of log r over the tokens M2PO kept", "(log ratio)²"),
    Metric(ROLLOUT_REWARD, "mean reward of the training batch's samples", "reward"),
    Metric(STALENESS_MEAN, "mean over the batch of policy versions between sampling and training", "versions"),
    Metric(STALENESS_MAX, "largest staleness in the batch", "versions"),
    Metric(STALENESS_P95, "95th percentile of staleness in the batch (linear interpolation)", "versions"),
    Metric(SIM_TIME_S, "simulated time since the trail started, at the end of the step", "simulated s"),
    Metric(SIM_STEP_S, "simulated time the step took", "simulated s"),
    Metric(SIM_ROLLOUT_BUSY_FRAC, "share of the step the rollout workers were generating", "fraction of time"),
    Metric(SIM_ROLLOUT_UTIL, "how full the rollout workers' batches were over the step, against saturation",
           "fraction of capacity"),
    Metric(SIM_TRAINER_IDLE_FRAC, "share of the step the trainers waited for data", "fraction of time"),
    Metric(SIM_GROUPS_IN_FLIGHT, "groups being generated, time-averaged over the step", "groups"),
    Metric(SIM_SAMPLES_PER_S, "samples trained on per simulated second since the start", "samples / simulated s"),
    Metric(PERF_SEC_PER_STEP, "wall time of the step on this machine", "s"),
    Metric(PERF_TOKENS_PER_S, "tokens of the training batch per wall second of the step", "tokens / s"),
)}


# An engine's update statistics (the loss functions' own names) -> the journal's names.
UPDATE_STATS: Dict[str, str] = {
    "loss": TRAIN_LOSS, "grad_norm": TRAIN_GRAD_NORM, "clip_frac": TRAIN_CLIP_FRAC, "entropy": TRAIN_ENTROPY,
    "approx_kl": TRAIN_APPROX_KL, "is_ratio_mean": TRAIN_IS_RATIO_MEAN,
    "m2_before": M2PO_M2_BEFORE, "m2_after": M2PO_M2_AFTER, "masked_frac": M2PO_MASKED_FRAC,
}
# The base model's eval at step 0 is logged under both names: eval/* (its curves start there) and base/* (the lift).
BASE_OF: Dict[str, str] = {EVAL_REWARD: BASE_REWARD, EVAL_REWARD_SAMPLED: BASE_REWARD_SAMPLED}


def is_declared(name: str) -> bool:
    """Whether a journal key is a metric this schema names (or one of AReaL's tags kept under `areal/`)."""
    return name in SCHEMA or name.startswith(KEPT_PREFIX)
