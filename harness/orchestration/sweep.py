"""`harness sweep`: validate every trail, launch the unfinished ones on a backend, watch them.

Order of work: compose + validate all trails (and the engine's preflight) → nothing launches on any error; take
the sweep's lock (one `harness sweep` per sweep dir at a time); write run dirs; skip finished trails, resume
unfinished ones (the engine picks up its checkpoint), rerun failed ones; on a backend whose trails run on this
machine, do each engine's work before launch once (its `prepare`: the embedded engine's base model); follow progress
(harness.orchestration.progress: a live table on a terminal, a line per change elsewhere); at the end sync
tracking, write the report, print a summary and exit non-zero if any trail failed or diverged.

A dry run executes nothing named in the sweep: engine preflights (which may run a program the sweep file names,
e.g. AReaL's `engine.python`) run on launch, or on a dry run only when asked for with --preflight.

Why one module of this size: launch, watch, interrupt and finish share the sweep's lock, its backend and its
tracker, and their order is the sweep's crash semantics; split, that order would be spread over several files.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

from omegaconf import OmegaConf
from rich.console import Console
from rich.markup import escape

from harness import plugins
from harness.backends.base import Backend, get_backend, wait_for_change, warm_up
from harness.backends.spawn import end_spare
from harness.errors import HarnessError, describe_os_error
from harness.interrupts import sigterm_as_interrupt
from harness.logs import duration
from harness.orchestration.progress import SweepDisplay, open_display, trail_row, trail_table
from harness.spec.sweepspec import SweepSpec, build_spec, build_trails
from harness.spec.trails import LEGACY_ID_DIGITS, Trail
from harness.store.locks import is_locked, read_holder, sweep_lock
from harness.store.rundir import RunDir, describe_lost
from harness.store.states import ACTIVE, TrailState
from harness.store.sweepdir import check_sweep_files, read_sweep_meta, trail_dirs, write_sweep_meta, write_trail_meta

if TYPE_CHECKING:
    from harness.tracking.sweep_tracking import SweepTracking

POLL_S = 0.2  # the longest the watch waits between two looks at the trails; a backend's wait ends it sooner
REPORT_FILE = Path("report") / "REPORT.md"  # where harness.report writes a sweep's report by default
WRITERS = 8  # run dirs written at once
LOCK_GRACE_S = 10.0  # how long a sweep waits, in all, for trails still held by workers that are ending
console = Console(soft_wrap=True)  # a long line stays one line in a log; tables still fit the width


def preflight(trails: List[Trail], sweep_dir: Path) -> List[str]:
    """Each engine's checks of the whole sweep (e.g. AReaL's own config parser), from its plug-in's `preflight`."""
    errors: List[str] = []
    for engine in sorted({t.cfg.engine.name for t in trails}):
        check = plugins.engine(engine).load_preflight()
        if check is not None:
            errors.extend(check([t for t in trails if t.cfg.engine.name == engine], sweep_dir))
    return errors


def prepare_engines(trails: List[Trail], say: plugins.Say) -> None:
    """Each engine's work before launch (its plug-in's `prepare`, e.g. building the base model every trail starts
    from), once for the sweep. A failure is said and the trails launch anyway: each meets it and records why."""
    for engine in sorted({t.cfg.engine.name for t in trails}):
        hook = plugins.engine(engine).load_prepare()
        if hook is None:
            continue
        try:
            hook([t for t in trails if t.cfg.engine.name == engine], say)
        except Exception as exc:  # noqa: BLE001
            say(engine, f"preparation failed, the trails try on their own: {type(exc).__name__}: {exc}")


def _single(trails: List[Trail], key: str) -> str:
    values = sorted({str(OmegaConf.select(t.cfg, key)) for t in trails})
    if len(values) > 1:
        raise HarnessError(f"invalid sweep over '{key}': {values} (allowed: one {key} per sweep)")
    return values[0]


def place(trails: List[Trail], sweep_dir: Path) -> None:
    """Check each trail's run dir before anything is written: it is a real directory whose files are regular files,
    and it holds this trail or none (a run dir of a trail with another id is refused, never shared). A trail's run
    dir is found by its id: one made under another name (the sweep's trails then differed in other axes, so names
    showed others; or ids were LEGACY_ID_DIGITS long, a prefix of today's) is the trail's own and kept."""
    check_sweep_files(sweep_dir)
    by_id: Dict[str, str] = {}
    for run_dir in trail_dirs(sweep_dir) if sweep_dir.is_dir() else []:
        record = RunDir(run_dir)
        if record.has_meta():
            by_id[record.meta().id] = run_dir.name
    for trail in trails:
        own = by_id.get(trail.id) or by_id.get(trail.id[:LEGACY_ID_DIGITS])
        if own and own != trail.dirname and not RunDir(trail.run_dir(sweep_dir)).has_meta():
            trail.dirname_override = own
        record = RunDir(trail.run_dir(sweep_dir))
        record.check()
        if record.has_meta():
            owner = record.meta().id
            if owner != trail.id and not (len(owner) == LEGACY_ID_DIGITS and trail.id.startswith(owner)):
                raise HarnessError(f"run directory {record.path} belongs to trail {owner}, not to trail {trail.id} "
                                   f"({' '.join(trail.overrides)}); refused rather than shared (allowed: one trail "
                                   f"per run directory; move that directory away, or change this trail's config)")


def prepare(trails: List[Trail], sweep_dir: Path, sweep_name: str) -> List[Path]:
    """Write each trail's run dir; return those still to run (not complete, and not being run by another live
    process, e.g. a job of an earlier detached sweep)."""
    to_run = []
    grace = time.monotonic() + LOCK_GRACE_S
    for trail in trails:
        run_dir = RunDir(trail.run_dir(sweep_dir))
        status = run_dir.status()
        if status.state.finished:
            lost = run_dir.lost_steps(status=status)
            if not lost:
                continue
            console.print(f"{trail.name}: {status.state} but {describe_lost(lost, status.step)} (from scratch)",
                          style="yellow", markup=False)
            shutil.rmtree(run_dir.checkpoint_dir, ignore_errors=True)  # its steps may be past the first hole
        while is_locked(run_dir.lock_path) and time.monotonic() < grace:
            time.sleep(POLL_S)  # a worker of a sweep that just died is still recording itself cancelled
        if is_locked(run_dir.lock_path):
            holder = read_holder(run_dir.lock_path)
            console.print(f"{trail.name}: skipped, being run by PID {holder.get('pid', '?')} on host "
                          f"{holder.get('host', '?')}", style="yellow", markup=False)
            continue
        to_run.append(trail)

    def write(trail: Trail) -> None:
        run_dir = RunDir(trail.run_dir(sweep_dir))
        fresh = not run_dir.status_path.exists()
        run_dir.save_config(trail.cfg, trail.overrides)
        write_trail_meta(run_dir.path, trail, sweep_name)
        if not fresh:  # an earlier outcome is reset; a new trail reads as pending until _submit records it
            run_dir.record_outcome(TrailState.PENDING)

    for_each(write, to_run)
    return [t.run_dir(sweep_dir) for t in to_run]


def for_each(action: Callable[[Any], object], items: Sequence[Any]) -> None:
    """`action` on every item, up to WRITERS at once; the first error is raised once all have ended. For the run
    dirs' files: each is fsynced, so writing them one after the other waits on the disk N times in a row."""
    if len(items) < 2:
        for item in items:
            action(item)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(WRITERS, len(items))) as pool:
        for _ in pool.map(action, items):
            pass


def check_binding(trails: List[Trail], sweep_dir: Path, extend: bool) -> None:
    """A sweep name is bound to its trails: a rerun may run the same trails (or some of them) again, but trails the
    sweep never had — another config under the same name — join it only with --extend, as cells of their own."""
    known = set(read_sweep_meta(sweep_dir).get("trails") or [])
    if not known or extend:
        return
    new = [t for t in trails if t.dirname not in known]
    if new:
        shown = "; ".join(" ".join(t.overrides) or t.name for t in new[:3]) + ("; …" if len(new) > 3 else "")
        raise HarnessError(f"sweep {sweep_dir.name!r} in {sweep_dir.parent} has {len(known)} trails, and "
                           f"{len(new)} of these are not among them ({shown}) (allowed: the sweep's own trails; "
                           f"add --extend to add these as new cells of the sweep, or give another --name)")


def _tracking(action: Callable[[], None], what: str) -> None:
    """MLflow bookkeeping (harness.tracking.sweep_tracking); tracking trouble never stops a sweep."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001
        console.print(f"tracking: {what} skipped: {exc}", style="yellow", markup=False)


def _preflight_or_note(trails: List[Trail], sweep_dir: Path, dry_run: bool, run_preflight: bool) -> None:
    """Run the engines' preflights on launch or when asked for; on a plain dry run say which were skipped."""
    if dry_run and not run_preflight:
        skipped = sorted({t.cfg.engine.name for t in trails if plugins.engine(t.cfg.engine.name).preflight})
        for engine in skipped:
            console.print(f"note: {engine}'s own validation of the trails was skipped (it runs programs the sweep "
                          f"names, e.g. engine.python); add --preflight to run it", markup=False)
        return
    errors = preflight(trails, sweep_dir)
    if errors:
        raise HarnessError("preflight found errors, nothing launched:\n  " + "\n  ".join(errors))


def _print_descriptions(trails: List[Trail], sweep_dir: Path) -> None:
    """What each trail would run, for engines that can say so without being installed (AReaL: its command)."""
    for trail in trails:
        describe = plugins.engine(trail.cfg.engine.name).load_describe()
        if describe is not None:
            console.print(f"{trail.name}:", highlight=False, markup=False)
            console.print(f"  {describe(trail, sweep_dir)}", highlight=False, markup=False, soft_wrap=True)


def main_sweep(args: Sequence[str], name: Optional[str] = None, dry_run: bool = False, detach: bool = False,
               report: bool = True, root: Optional[str] = None, wait: bool = False,
               run_preflight: bool = False, yes: bool = False, extend: bool = False) -> int:
    spec = build_spec(args, name=name)
    trails = build_trails(spec, confirmed=yes)
    if not trails:
        raise HarnessError("the sweep has no trails")
    backend_name = _single(trails, "backend.name")
    _single(trails, "root")
    backend_plugin = plugins.backend(backend_name)
    if detach and not backend_plugin.detachable:
        detachable = [name for name, p in plugins.backends().items() if p.detachable]
        raise HarnessError(f"invalid value for '--detach' with backend={backend_name} "
                           f"(allowed: backend={' | '.join(detachable)}, whose jobs outlive this command)")
    sweep_dir = Path(root or trails[0].cfg.root) / spec.name
    _preflight_or_note(trails, sweep_dir, dry_run, run_preflight)
    if dry_run:
        place(trails, sweep_dir)
        check_binding(trails, sweep_dir, extend)
        rows: List[Dict[str, object]] = [
                {"trail": t.name, "id": t.id, "state": RunDir(t.run_dir(sweep_dir)).status().state,
                 "overrides": " ".join(t.overrides)} for t in trails]
        console.print(trail_table(rows, f"{spec.name}: {len(trails)} trails on {backend_name} (dry run)",
                                  ("trail", "id", "state", "overrides")))
        _print_descriptions(trails, sweep_dir)
        return 0

    make_sweep_dir(sweep_dir)

    def waiting(holder: Dict[str, object]) -> None:
        console.print(f"sweep {spec.name!r} is in use by PID {holder.get('pid', '?')} on host "
                      f"{holder.get('host', '?')}; waiting for it to end (--wait)", markup=False)

    place(trails, sweep_dir)  # before the lock, which writes its holder: a refusal writes nothing at all
    check_binding(trails, sweep_dir, extend)
    with sweep_lock(sweep_dir).acquire(wait=wait, on_wait=waiting):
        place(trails, sweep_dir)
        check_binding(trails, sweep_dir, extend)
        return _launch(spec, trails, sweep_dir, backend_name, backend_plugin, detach, report)


def make_sweep_dir(sweep_dir: Path) -> None:
    """Create the sweep dir, or say in one line why the root cannot hold it (a file, read-only, no space)."""
    root = sweep_dir.parent
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in str(root)):
        raise HarnessError(f"invalid value for '--root': {str(root)!r} (allowed: a path without newlines or other "
                           f"control characters)")
    if root.exists() and not root.is_dir():
        raise HarnessError(f"root {root} is not a directory (set --root to a directory)")
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot create the sweep directory under root {root}: {describe_os_error(exc)}") from exc
    if not os.access(sweep_dir, os.W_OK):
        raise HarnessError(f"root {root}: {sweep_dir} is not writable (read-only file system or permissions)")


def _best_effort(action: Callable[..., object], *args: object, **kwargs: object) -> None:
    """Bookkeeping while stopping on an OS error (a full disk): do what can be done, never raise again."""
    try:
        action(*args, **kwargs)
    except (OSError, HarnessError):
        pass


def _launch(spec: SweepSpec, trails: List[Trail], sweep_dir: Path, backend_name: str,
            backend_plugin: plugins.BackendPlugin, detach: bool, report: bool) -> int:
    """Write the run dirs and run the unfinished trails, holding the sweep's lock."""
    known = read_sweep_meta(sweep_dir).get("trails", [])
    dirnames = known + [t.dirname for t in trails if t.dirname not in known]
    from harness.tracking.sweep_tracking import SweepTracking

    tracking = SweepTracking(trails[0].cfg.tracking, sweep_dir, backend_plugin.same_host)
    write_sweep_meta(sweep_dir, name=spec.name, description=spec.description, source=spec.source,
                     overrides=spec.overrides, cli_overrides=spec.cli_overrides, trails=dirnames,
                     backend=backend_name, state=TrailState.RUNNING.value, seeds=spec.seed_roles or None,
                     launched_from=os.getcwd(), **tracking.uri_fields())
    backend = get_backend(trails[0].cfg)  # the local backend adopts the command line's spare worker
    end_spare()  # one no backend adopted
    all_dirs = [t.run_dir(sweep_dir) for t in trails]
    watched = False
    phases = PhaseClock()
    follow = f"`harness status {shlex.quote(str(sweep_dir))}`"
    handed_over = False  # a detached sweep's jobs are the scheduler's once submitted: its backend stays open
    try:  # from here on a Ctrl-C (writing run dirs, starting the tracker, watching) is recorded as an interrupt
        if not detach:  # workers start while the run dirs are written and tracking starts
            warm_up(backend, [t for t in trails if not RunDir(t.run_dir(sweep_dir)).status().state.finished])
        to_run = prepare(trails, sweep_dir, spec.name)
        console.print(f"sweep [bold]{escape(spec.name)}[/]: {len(trails)} trails, {len(trails) - len(to_run)} "
                      f"already finished, {len(to_run)} to run on {escape(backend_name)} → {escape(str(sweep_dir))}")
        _tracking(tracking.start, "start")
        if detach:
            handles = _submit(backend, to_run)
            handed_over = True
            console.print(f"submitted {len(handles)} trails; follow with {follow}", markup=False)
            return 0
        with sigterm_as_interrupt(), open_display(console, all_dirs,
                                                  float(trails[0].cfg.sweep.progress_every_s)) as display:
            if to_run and backend_plugin.same_host:
                prepare_engines([t for t in trails if t.run_dir(sweep_dir) in to_run], display.say)
                display.end_phases()
                phases.lap("preparation")
            handles = _submit(backend, to_run)
            _watch(backend, dict(zip(to_run, handles, strict=True)), all_dirs, display)
            phases.lap("trails")
            watched = True
    except KeyboardInterrupt:
        with further_interrupts_ignored():
            if backend_plugin.detachable:
                # the jobs belong to the scheduler: say so rather than pretend they were stopped; the sweep goes on
                console.print(f"[red]interrupted:[/] the submitted trails go on running on {escape(backend_name)}; "
                              f"follow them with {escape(follow)}" +
                              (f", cancel them with {escape(backend_plugin.cancel_hint)}"
                               if backend_plugin.cancel_hint else ""))
                _best_effort(write_sweep_meta, sweep_dir, state=TrailState.RUNNING.value)
            else:
                console.print("[red]interrupted: cancelling running trails[/]")
                _best_effort(write_sweep_meta, sweep_dir, state=TrailState.CANCELLED.value, ended=time.time())
                _best_effort(backend.cancel_all)
        return 130
    except OSError as exc:
        # a full disk or a root gone read-only: stop every trail, record what can be recorded, say it in one line
        _best_effort(backend.cancel_all)
        _best_effort(write_sweep_meta, sweep_dir, state=TrailState.FAILED.value, ended=time.time())
        raise HarnessError(f"{describe_os_error(exc)}; the sweep was stopped and its running trails cancelled "
                           f"(finished steps are kept: rerun the sweep once the problem is fixed)") from exc
    finally:
        with further_interrupts_ignored():
            if not handed_over:
                backend.close()
            if not watched:
                tracking.close()
    return _finish(tracking, sweep_dir, all_dirs, report, phases)


class further_interrupts_ignored:
    """Within the block, Ctrl-C and SIGTERM are noted and ignored: the sweep is already stopping, and a second or
    third Ctrl-C must not cut short the bookkeeping that records how it stopped (trails cancelled, sweep.json)."""

    def __enter__(self) -> further_interrupts_ignored:
        def noted(signum: int, frame: object) -> None:
            os.write(2, b"still stopping: recording the trails' states, a moment\n")

        self._previous = [(sig, signal.getsignal(sig)) for sig in (signal.SIGINT, signal.SIGTERM)]
        for sig, _ in self._previous:
            signal.signal(sig, noted)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous:
            signal.signal(sig, handler)


class PhaseClock:
    """Wall time of each phase of a sweep (preparation, trails, report), for the line that ends its output."""

    def __init__(self) -> None:
        self.start = self.mark = time.monotonic()
        self.laps: List[tuple] = []

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.laps.append((phase, now - self.mark))
        self.mark = now

    def summary(self) -> str:
        parts = ", ".join(f"{phase} {duration(seconds)}" for phase, seconds in self.laps)
        return f"wall time {duration(time.monotonic() - self.start)}: {parts}"


def _submit(backend: Backend, run_dirs: List[Path]) -> List[object]:
    """Hand the trails to the backend, noting when (the report's queue time is from here to the trail's start)."""
    now = time.time()
    for_each(lambda run_dir: RunDir(run_dir).record_outcome(TrailState.PENDING, submitted=now), run_dirs)
    return backend.submit(run_dirs) if run_dirs else []


def _watch(backend: Backend, handles: Dict[Path, object], all_dirs: List[Path], display: SweepDisplay) -> None:
    """Poll the backend until no trail it runs is pending or running, showing each change on `display`. Between two
    looks it waits until a trail may have changed (the backend's `wait`: a local worker's answer), at most POLL_S, so
    the display's clock and its periodic lines keep their pace."""
    states = {d: RunDir(d).status().state for d in all_dirs}
    while True:
        for run_dir, handle in handles.items():
            states[run_dir] = backend.poll(handle)
        display.update(states)
        if all(states[d] not in ACTIVE for d in handles):
            break
        wait_for_change(backend, POLL_S)


def _mtime(path: Path) -> Optional[float]:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def report_skipped(sweep_dir: Path, all_dirs: List[Path]) -> Optional[str]:
    """Why the report a sweep writes when it ends would say nothing new (None: it would): a sweep of one trail
    compares nothing, and its row is the table printed at the end; a report newer than every trail's status and
    journal is the one a new report would be."""
    if len(all_dirs) == 1:
        return f"a single trail (`harness report {sweep_dir}` writes it)"
    written = _mtime(sweep_dir / REPORT_FILE)
    changed = [t for d in map(RunDir, all_dirs) for t in (_mtime(d.status_path), _mtime(d.journal_path))
               if t is not None]
    if written is not None and written >= max(changed, default=0.0):
        return f"unchanged since it was written, no trail has changed ({sweep_dir / REPORT_FILE})"
    return None


def _finish(tracking: SweepTracking, sweep_dir: Path, all_dirs: List[Path], report: bool,
            phases: PhaseClock) -> int:
    skipped = report_skipped(sweep_dir, all_dirs) if report else None
    report = report and skipped is None
    work = [(doing, what) for doing, what, on in (("catching up MLflow", "MLflow", tracking.cfg.enabled),
                                                  ("writing the report", "report", report)) if on]
    if work:
        console.print(f"trails ended; {' and '.join(doing for doing, _ in work)}")
    rows = [trail_row(d) for d in all_dirs]
    bad = [r for r in rows if r["state"] != TrailState.DONE or not r["complete"]]
    outcome = TrailState.FAILED if bad else TrailState.DONE
    write_sweep_meta(sweep_dir, state=outcome.value, ended=time.time())
    report_dir: Optional[Path] = None
    report_failed = False
    if report:  # from the journals, before tracking ends: the summary run gets it as artifacts
        try:
            from harness.report import write_report

            path = write_report(sweep_dir)
            report_dir = path.parent
            console.print(f"report: {path}", markup=False)
        except Exception as exc:  # noqa: BLE001 - a report problem never hides the sweep's outcome
            report_failed = True
            said = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            console.print(f"report not written: {said}", style="red", markup=False)
    elif skipped:
        console.print(f"report: not written: {skipped}", highlight=False, markup=False)
    _tracking(lambda: tracking.finish(outcome, report_dir), "finish")
    phases.lap(" and ".join(what for _, what in work) or "wrap-up")
    console.print(phases.summary())
    meta = read_sweep_meta(sweep_dir)
    if tracking.cfg.enabled and meta.get("mlflow_view") and meta.get("mlflow_uri"):
        from harness.tracking.view import view_line

        console.print(view_line(str(meta["mlflow_uri"]), str(meta["mlflow_view"])), soft_wrap=True, markup=False)
    console.print(trail_table(rows, f"{sweep_dir.name}: {len(rows) - len(bad)}/{len(rows)} done"))
    if bad:
        console.print(f"[red]{len(bad)} trail(s) did not finish cleanly:[/] " +
                      escape("; ".join(f"{r['trail']}: {r['state']} {r['reason']}".strip() for r in bad)))
        return 1
    return 1 if report_failed else 0
