"""What a sweep says while it runs: a live table on a terminal, plain lines anywhere else (a pipe, a CI log, nohup).

Why both: rich's live table redraws itself in place, which a terminal shows and a log cannot. Off a terminal a reader
(now, through `tail -f`, or later) gets one line per trail state change — `[3/15] <trail>: done (eval/reward 0.610)
in 84 s` — and, every `sweep.progress_every_s`, one line of counts, as tqdm does when it is not on a terminal. Work
done before the trails start (an engine's `prepare`, e.g. pretraining the base model) has a row of its own in the
table, or its own lines.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.logs import duration
from harness.store.journal import read_records
from harness.store.journal_index import JournalIndex
from harness.store.metrics import EVAL_REWARD
from harness.store.rundir import RunDir, describe_lost
from harness.store.states import STATES, TrailState

STATUS_COLUMNS = ("trail", "id", "state", "step", "reason")
HEADLINE_METRICS = (EVAL_REWARD,)  # said with a finished trail, when its journal has them


def trail_table(rows: Sequence[Dict[str, object]], title: str = "",
                columns: Sequence[str] = STATUS_COLUMNS) -> Table:
    table = Table(title=Text(title) if title else None)  # Text: names and reasons are never read as markup
    for column in columns:
        table.add_column(column, no_wrap=column in ("trail", "id", "state", "step"))
    for row in rows:
        table.add_row(*(Text(str(row.get(c, "") or "")) for c in columns))
    return table


def trail_row(run_dir: Path, check_journal: bool = True, index: Optional[JournalIndex] = None) -> Dict[str, Any]:
    """A trail's table row; a finished trail whose journal lost records is flagged in its reason, not counted done
    (`check_journal=False` skips reading the journal, for the live progress table; `index` answers from the sweep's
    journal index where the journal has not changed)."""
    record = RunDir(run_dir)
    meta, status = record.meta(), record.status()
    step, total = status.step, status.total_steps
    lost: List[int] = []
    if check_journal:
        lost = record.lost_steps(index.ranges(run_dir) if index is not None and status.state.finished else None,
                                 status)
    return {"trail": meta.name, "id": meta.id if record.has_meta() else "", "state": status.state,
            "step": f"{step}/{total}" if step is not None and total else (step if step is not None else ""),
            "reason": f"{status.state} but {describe_lost(lost, step)}" if lost else status.reason,
            "complete": not lost}


def counts(states: Mapping[Path, object]) -> str:
    """queued 11 · running 2 · done 2 · diverged 0 · failed 0 (failed: also cancelled and interrupted)."""
    n = {s: sum(1 for v in states.values() if v == s) for s in TrailState}
    stopped = n[TrailState.FAILED] + n[TrailState.CANCELLED] + n[TrailState.INTERRUPTED]
    return (f"queued {n[TrailState.PENDING]} · running {n[TrailState.RUNNING]} · done {n[TrailState.DONE]} · "
            f"diverged {n[TrailState.DIVERGED]} · failed {stopped}")


def outcome(run_dir: Path, state: object) -> str:
    """A trail's state as one clause: `running`, `done (eval/reward 0.610) in 84 s`, `failed in 3 s: <reason>`."""
    if str(state) not in STATES:
        return str(state)
    state = TrailState(str(state))
    if not state.terminal:
        return state.value
    status = RunDir(run_dir).status()
    text = state.value
    if state.finished:
        last: Dict[str, float] = {}
        for record in read_records(run_dir):
            last.update({k: record[k] for k in HEADLINE_METRICS if isinstance(record.get(k), (int, float))})
        said = ", ".join(f"{k} {v:.3f}" for k, v in last.items())
        text += f" ({said})" if said else ""
    started, ended = status.started, status.ended
    if started is not None and ended is not None and ended >= started:
        text += f" in {duration(ended - started)}"
    reason = status.reason
    return f"{text}: {reason}" if reason and state != TrailState.DONE else text


class SweepDisplay:
    """The trails' states and the phases before launch; a subclass shows them. Used as a context manager."""

    def __init__(self, console: Console, run_dirs: Sequence[Path], every_s: float = 30.0):
        self.console = console
        self.run_dirs = list(run_dirs)
        self.every_s = every_s
        self.names = {d: RunDir(d).meta().name for d in self.run_dirs}
        self.index = {d: f"[{i}/{len(self.run_dirs)}]" for i, d in enumerate(self.run_dirs, 1)}
        self.states: Dict[Path, object] = {d: RunDir(d).status().state for d in self.run_dirs}
        self.phases: Dict[str, Tuple[str, float, Optional[float]]] = {}  # task -> (message, started, ended)
        self.started = time.time()

    def say(self, task: str, message: str) -> None:
        """The latest word on a piece of work before launch (an engine's `prepare`)."""
        _, started, _ = self.phases.get(task, ("", time.time(), None))
        self.phases[task] = (message, started, None)

    def end_phases(self) -> None:
        """The work before launch is over: its clocks stop."""
        now = time.time()
        self.phases = {task: (msg, started, ended or now) for task, (msg, started, ended) in self.phases.items()}

    def update(self, states: Mapping[Path, object]) -> None:
        self.states.update(states)

    def __enter__(self) -> SweepDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LiveDisplay(SweepDisplay):
    """On a terminal: one table redrawn in place, the phases before launch first, then every trail."""

    def __enter__(self) -> LiveDisplay:
        from rich.live import Live  # only on a terminal

        self._live = Live(self, console=self.console, refresh_per_second=2)
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.refresh()
        self._live.stop()

    def __rich__(self) -> Table:
        """Rendered by Live twice a second, from its own thread: copies what it reads."""
        now = time.time()
        states = dict(self.states)
        table = trail_table([], f"{counts(states)} · {duration(now - self.started)}")
        for task, (message, started, ended) in list(self.phases.items()):
            state = "preparing" if ended is None else ""
            table.add_row(Text(task), "", state, duration((ended or now) - started), Text(message),
                          end_section=task == list(self.phases)[-1])
        for run_dir in self.run_dirs:
            row = trail_row(run_dir, check_journal=False) | {"state": states.get(run_dir)}
            table.add_row(*(Text(str(row.get(c, "") or "")) for c in STATUS_COLUMNS))
        return table


class LineDisplay(SweepDisplay):
    """Off a terminal: a line per phase message and per trail state change, and every `every_s` a line of counts."""

    def __init__(self, console: Console, run_dirs: Sequence[Path], every_s: float = 30.0):
        super().__init__(console, run_dirs, every_s)
        self._next_tick = time.monotonic() + every_s

    def _print(self, line: str) -> None:
        self.console.print(line, soft_wrap=True, markup=False, highlight=False)

    def say(self, task: str, message: str) -> None:
        super().say(task, message)
        self._print(f"{task}: {message}")

    def update(self, states: Mapping[Path, object]) -> None:
        changed = [d for d in self.run_dirs if d in states and states[d] != self.states.get(d)]
        super().update(states)
        for run_dir in changed:
            self._print(f"{self.index[run_dir]} {self.names[run_dir]}: {outcome(run_dir, states[run_dir])}")
        if time.monotonic() >= self._next_tick:
            self._next_tick = time.monotonic() + self.every_s
            self._print(self.progress_line())

    def progress_line(self) -> str:
        """`progress 2 min 10 s: queued 11 · running 2 · … · [3/15] step 300/800, [4/15] step 120/800`."""
        running: List[str] = []
        for run_dir, state in self.states.items():
            if state == TrailState.RUNNING:
                step = trail_row(run_dir, check_journal=False)["step"]
                running.append(f"{self.index[run_dir]} step {step}" if step != "" else self.index[run_dir])
        line = f"progress {duration(time.time() - self.started)}: {counts(self.states)}"
        return f"{line} · {', '.join(running)}" if running else line


def open_display(console: Console, run_dirs: Sequence[Path], every_s: float = 30.0) -> SweepDisplay:
    """The live table on a terminal, lines elsewhere."""
    kind = LiveDisplay if console.is_terminal else LineDisplay
    return kind(console, run_dirs, every_s)
