"""AReaL's TensorBoard event files → the trail's journal, under the harness's metric names.

AReaL (StatsLogger with `stats_logger.tensorboard.path`) writes one scalar per stat key per training step, at TB step
= AReaL's 0-based global_step; the journal's step is the number of training steps done (global_step + 1).

Tailing has three cases to get right:
- a file still being written: records are read incrementally (TensorBoard's loader keeps its offset and retries a
  torn record), and a step is journaled only once a later step shows up, or at the end of the run, because a step's
  tags can straddle a flush;
- a resumed run: AReaL's recover starts a new event file that re-logs steps from its checkpoint on; the newest file
  wins from its first step, and journal lines that disagree with it are truncated and rewritten, so no step is ever
  in the journal twice;
- tags from two AReaL versions (`ppo_actor/update/grad_norm` and the older `grpo_actor/grad_norm`).
Reads with TensorBoard's own event-file loader; nothing of AReaL is imported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util

from harness.store.journal import Journal, iter_records
from harness.store.metrics import (
    EVAL_REWARD,
    KEPT_PREFIX,
    M2PO_MASKED_FRAC,
    ROLLOUT_REWARD,
    STALENESS_MAX,
    STALENESS_MEAN,
    TRAIN_APPROX_KL,
    TRAIN_CLIP_FRAC,
    TRAIN_ENTROPY,
    TRAIN_GRAD_NORM,
    TRAIN_IS_RATIO_MEAN,
    TRAIN_LOSS,
)

# harness metric -> AReaL tags, first present wins (AReaL ≥ 1.0 exports a token stat as <key>/avg|min|max).
TAG_MAP: Dict[str, Tuple[str, ...]] = {
    TRAIN_GRAD_NORM: ("ppo_actor/update/grad_norm", "grpo_actor/grad_norm"),
    TRAIN_CLIP_FRAC: ("ppo_actor/update/clip_ratio/avg", "ppo_actor/update/clip_ratio", "grpo_actor/clip_ratio"),
    TRAIN_LOSS: ("ppo_actor/update/actor_loss/avg", "ppo_actor/update/actor_loss"),
    TRAIN_ENTROPY: ("ppo_actor/update/entropy/avg", "ppo_actor/update/entropy"),
    TRAIN_APPROX_KL: ("ppo_actor/update/approx_kl/avg", "ppo_actor/update/approx_kl"),
    TRAIN_IS_RATIO_MEAN: ("ppo_actor/update/importance_weight/avg", "ppo_actor/update/importance_weight"),
    ROLLOUT_REWARD: (ROLLOUT_REWARD,),
    EVAL_REWARD: ("eval-rollout/reward",),
    STALENESS_MEAN: ("ppo_actor/update/version_stats/sample_staleness_theta_avg",),
    STALENESS_MAX: ("ppo_actor/update/version_stats/sample_staleness_theta_max",),
}
# M2PO's kept-token fraction: tokens left in the loss after masking ÷ all valid tokens of the batch.
KEPT_TOKENS = ("ppo_actor/update/n_valid_tokens", "ppo_actor/n_valid_tokens")
OTHER_PREFIX = KEPT_PREFIX  # AReaL tags that TAG_MAP does not map, kept as areal/<tag>
EVENT_GLOB = "events.out.tfevents.*"


def map_tags(tags: Mapping[str, float]) -> Dict[str, float]:
    """One step's AReaL tags → harness metrics; every other tag is kept as areal/<tag>."""
    out: Dict[str, float] = {}
    used = set()
    for metric, candidates in TAG_MAP.items():
        for tag in candidates:
            if tag in tags:
                out[metric] = float(tags[tag])
                used.add(tag)
                break
    kept, total = (tags.get(t) for t in KEPT_TOKENS)
    if kept is not None and total:
        out[M2PO_MASKED_FRAC] = 1.0 - float(kept) / float(total)
    for tag, value in tags.items():
        if tag not in used:
            out[OTHER_PREFIX + tag] = float(value)
    return out


def _scalar(value: Any) -> Optional[float]:
    """A summary value's number: simple_value (tensorboardX, torch) or a scalar tensor (TF2-style writers)."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor"):
        array = tensor_util.make_ndarray(value.tensor)
        if array.size == 1 and array.dtype.kind in "fiub":
            return float(array.reshape(()))
    return None


def _name_time(path: Path) -> float:
    """The creation second in an event file's name: events.out.tfevents.<unix time>.<host>…"""
    match = re.match(r"events\.out\.tfevents\.(\d+(?:\.\d+)?)", path.name)
    return float(match.group(1)) if match else path.stat().st_mtime


@dataclass
class _FileData:
    loader: EventFileLoader
    created: Optional[float] = None   # wall time of the file's first event (sub-second, unlike its name)
    steps: Dict[int, Dict[str, float]] = field(default_factory=dict)
    times: Dict[int, float] = field(default_factory=dict)


class TensorBoardTail:
    """Incremental reader of every event file under a directory, merged by step with resume semantics."""

    def __init__(self, tb_dir: Path | str):
        self.tb_dir = Path(tb_dir)
        self._files: Dict[Path, _FileData] = {}
        self.min_changed: Optional[int] = None   # lowest TB step touched since the last take_changed()

    def poll(self) -> int:
        """Read what was appended since the last poll (new files included); returns how many scalars were read."""
        if self.tb_dir.is_dir():
            for path in sorted(self.tb_dir.rglob(EVENT_GLOB)):
                if path not in self._files and path.is_file():
                    self._files[path] = _FileData(EventFileLoader(str(path)))
        count = 0
        for data in self._files.values():
            for event in data.loader.Load():
                if data.created is None:
                    data.created = float(event.wall_time)
                if not event.HasField("summary"):
                    continue
                step = int(event.step)
                for value in event.summary.value:
                    number = _scalar(value)
                    if number is None:
                        continue
                    data.steps.setdefault(step, {})[value.tag] = number
                    data.times[step] = max(data.times.get(step, 0.0), float(event.wall_time))
                    self.min_changed = step if self.min_changed is None else min(self.min_changed, step)
                    count += 1
        return count

    def take_changed(self) -> Optional[int]:
        changed, self.min_changed = self.min_changed, None
        return changed

    def merged(self) -> Tuple[Dict[int, Dict[str, float]], Dict[int, float]]:
        """{step: {tag: value}}, {step: wall time}: a later file replaces earlier ones from its first step on."""
        steps: Dict[int, Dict[str, float]] = {}
        times: Dict[int, float] = {}
        def order(path: Path) -> Tuple[float, str]:
            created = self._files[path].created
            return (created if created is not None else _name_time(path), path.name)

        for path in sorted(self._files, key=order):
            data = self._files[path]
            if not data.steps:
                continue
            first = min(data.steps)
            for step in [s for s in steps if s >= first]:
                del steps[step]
                times.pop(step, None)
            for step, tags in data.steps.items():
                steps.setdefault(step, {}).update(tags)
                times[step] = data.times[step]
        return steps, times


def _equal(a: object, b: object) -> bool:
    try:
        fa, fb = float(a), float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return a == b
    return fa == fb or (math.isnan(fa) and math.isnan(fb))


def _same_record(record: Mapping[str, object], metrics: Mapping[str, float]) -> bool:
    keys = set(record) - {"step", "time"}
    return keys == set(metrics) and all(_equal(record[k], metrics[k]) for k in keys)


class JournalSync:
    """Keeps the trail's journal equal to the merged TensorBoard view: appends new steps, rewrites re-logged ones."""

    def __init__(self, run_dir: Path | str, journal: Journal, tb_dir: Path | str,
                 on_record: Optional[Callable[[int, Dict[str, float]], None]] = None):
        self.run_dir = Path(run_dir)
        self.journal = journal
        self.tail = TensorBoardTail(tb_dir)
        self.on_record = on_record
        records = list(iter_records(self.run_dir))
        self.cursor = max((int(r["step"]) for r in records), default=0)   # last journal step written
        self._recheck_from: Optional[int] = None   # first journaled step not yet compared with re-logged stats

    def sync(self, final: bool = False) -> List[int]:
        """Ingest what is new; `final` also writes the last step. Returns the journal steps written."""
        self.tail.poll()
        changed = self.tail.take_changed()
        steps, times = self.tail.merged()
        if not steps:
            return []
        last = max(steps)
        ready = sorted(s for s in steps if final or s < last)
        mapped = {s + 1: map_tags(steps[s]) for s in ready}
        if changed is not None:  # journaled steps from here on may differ from the files: checked once ready
            low = changed + 1
            self._recheck_from = low if self._recheck_from is None else min(self._recheck_from, low)
        if self._recheck_from is not None:
            if self._recheck_from <= self.cursor:
                self._rewind_if_disagreeing(mapped, self._recheck_from)
            after = max(self._recheck_from, max(mapped, default=0) + 1)   # the steps not ready yet
            self._recheck_from = after if after <= self.cursor else None
        written = []
        for jstep in sorted(mapped):
            if jstep <= self.cursor:
                continue
            self.journal.append(jstep, mapped[jstep], time=times.get(jstep - 1))
            self.cursor = jstep
            written.append(jstep)
            if self.on_record is not None:
                self.on_record(jstep, mapped[jstep])
        return written

    def _rewind_if_disagreeing(self, mapped: Dict[int, Dict[str, float]], from_step: int) -> None:
        """A resumed run re-logged steps already journaled: keep the journal up to the first step that differs from
        them or that it lacks (a step an earlier run never logged, which a later run did)."""
        journaled = {int(r["step"]): r for r in iter_records(self.run_dir) if int(r["step"]) >= from_step}
        for jstep in sorted(s for s in mapped if from_step <= s <= self.cursor):
            record = journaled.get(jstep)
            if record is None or not _same_record(record, mapped[jstep]):
                self.journal.rewind(jstep - 1)
                self.cursor = jstep - 1
                return


def read_tensorboard(tb_dir: Path | str) -> Dict[int, Dict[str, float]]:
    """Every step of a finished run, mapped: {journal step: {metric: value}} (for reports and tests)."""
    tail = TensorBoardTail(tb_dir)
    tail.poll()
    steps, _ = tail.merged()
    return {s + 1: map_tags(tags) for s, tags in sorted(steps.items())}
