"""A sweep directory as an adversary leaves it, and inputs as one types them: links and FIFOs where files belong,
run directories of other trails, a sweep name reused with another config, checkpoints of other trails, zero-filled
journals, damaged records, oversized sweeps, and user text that looks like markup. Each ends in one
`harness: error:` line (or the trail's one-line reason), and nothing is written outside the sweep's directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FinishedSweep
from tiny_trail import tiny_trail

from harness.cli import main
from harness.store.journal import read_records
from harness.store.rundir import read_status, record_outcome
from harness.store.states import TrailState
from harness.store.sweepdir import trail_dirs

REPO = Path(__file__).resolve().parent.parent
VICTIM = "a file outside the sweep, which nothing may change\n"


def _harness(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("harness: error: "), err
    return lines[0]


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM)
    return victim


def _cli(args: list[str], cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """`harness ARGS` in a process of its own (a hang is a failure, not a stuck test)."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


# --- links and FIFOs ------------------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_journal_that_is_a_link_is_never_written_through(finished_sweep: FinishedSweep, root: Path,
                                                            tmp_path: Path, capsys) -> None:
    sweep_dir = finished_sweep.copy_to(root)
    victim, run_dir = _victim(tmp_path), trail_dirs(sweep_dir)[0]
    (run_dir / "journal.jsonl").unlink()
    (run_dir / "journal.jsonl").symlink_to(victim)
    code, _, err = _harness(capsys, *finished_sweep.args(root))
    assert code == 2, err
    line = _one_error_line(err)
    assert str(run_dir / "journal.jsonl") in line and "symbolic link" in line and "remove it" in line, line
    assert victim.read_text() == VICTIM


@pytest.mark.parametrize("lock", ["sweep.lock", ".sweep.json.lock", "trail.lock"])
def test_a_lock_that_is_a_link_is_never_truncated(lock: str, finished_sweep: FinishedSweep, root: Path,
                                                  tmp_path: Path, capsys) -> None:
    sweep_dir = finished_sweep.copy_to(root)
    victim, run_dir = _victim(tmp_path), trail_dirs(sweep_dir)[0]
    record_outcome(run_dir, TrailState.FAILED, "to be run again")
    path = (run_dir if lock == "trail.lock" else sweep_dir) / lock
    path.unlink(missing_ok=True)
    path.symlink_to(victim)
    code, _, err = _harness(capsys, *finished_sweep.args(root))
    assert code == 2 and str(path) in _one_error_line(err), err
    assert victim.read_text() == VICTIM


def test_any_lock_refuses_a_link_and_leaves_its_target_alone(tmp_path: Path) -> None:
    """The tracker's lock is a FileLock like the others: none of them opens its path through a link."""
    from harness.errors import HarnessError
    from harness.store.locks import FileLock

    victim = _victim(tmp_path)
    (tmp_path / "tracker.lock").symlink_to(victim)
    with pytest.raises(HarnessError, match="symbolic link"):
        FileLock(tmp_path / "tracker.lock").acquire()
    assert victim.read_text() == VICTIM


@pytest.mark.parametrize("command", ["status", "report"])
def test_a_journal_that_is_a_fifo_never_blocks_status_or_report(command: str, finished_sweep: FinishedSweep,
                                                                 root: Path) -> None:
    sweep_dir = finished_sweep.copy_to(root)
    journal = trail_dirs(sweep_dir)[1] / "journal.jsonl"
    journal.unlink()
    os.mkfifo(journal)
    try:
        done = _cli([command, finished_sweep.name, "--root", str(root)], cwd=root.parent, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`harness {command}` blocked on a FIFO journal")
    assert done.returncode == 2, done.stderr
    line = _one_error_line(done.stderr)
    assert str(journal) in line and "a FIFO" in line, line


# --- identity -----------------------------------------------------------------------------------------------------

def _colliding_learning_rates(cfg) -> tuple[str, str]:
    """Two learning rates whose trail ids (with everything else as in `cfg`) share their first six hex digits,
    found by trying rates 1e-9 apart (a birthday search: a few thousand ids)."""
    from omegaconf import OmegaConf

    from harness.spec.trails import trail_id

    seen: dict = {}
    for i in range(200_000):
        lr = f"{0.0001 + i * 1e-9:.9f}"
        cfg = OmegaConf.merge(cfg, {"engine": {"lr": float(lr)}})
        prefix = trail_id(cfg)[:6]
        if prefix in seen:
            return seen[prefix], lr
        seen[prefix] = lr
    raise AssertionError("no two learning rates share six hex digits of their trail ids")


@pytest.mark.e2e
def test_trails_whose_ids_began_alike_get_a_run_dir_each(root: Path, capsys) -> None:
    """Two learning rates whose trail ids share their first six hex digits, which once named their run dirs."""
    from harness.spec.compose import compose_trail
    from harness.spec.trails import trail_id

    lrs = _colliding_learning_rates(compose_trail(tiny_trail()))
    ids = [trail_id(compose_trail(tiny_trail(f"engine.lr={lr}"))) for lr in lrs]
    assert ids[0][:6] == ids[1][:6] and ids[0] != ids[1], ids
    code, out, err = _harness(capsys, "sweep", *tiny_trail(f"engine.lr={','.join(lrs)}"), "--name", "lr",
                              "--root", str(root), "--no-report")
    assert code == 0, out + err
    dirs = trail_dirs(root / "lr")
    assert len(dirs) == 2 and {json.loads((d / "trail.json").read_text())["id"] for d in dirs} == set(ids)
    for run_dir in dirs:
        assert [r["step"] for r in read_records(run_dir)] == [0, 1, 2, 3, 4, 5, 6]  # step 0: the base model's eval


def test_run_dirs_carry_twelve_hex_digits_and_two_trails_never_share_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.errors import HarnessError
    from harness.spec import trails
    from harness.spec.compose import compose_trail

    configs = [(compose_trail(tiny_trail(f"engine.lr={lr}")), [f"engine.lr={lr}"]) for lr in (1e-4, 2e-4, 3e-4)]
    made = trails.make_trails(configs)
    assert all(len(t.id) >= 12 and t.dirname.endswith(t.id[:12]) for t in made)
    assert len({t.dirname for t in made}) == 3
    monkeypatch.setattr(trails, "DIR_DIGITS", 0)  # every run dir named alike: the sweep is refused, not merged
    with pytest.raises(HarnessError, match="would share the run directory"):
        trails.make_trails(configs)


def test_a_run_dir_holding_another_trail_is_refused(finished_sweep: FinishedSweep, root: Path, capsys) -> None:
    sweep_dir = finished_sweep.copy_to(root)
    run_dir = trail_dirs(sweep_dir)[0]
    record_outcome(run_dir, TrailState.FAILED, "to be run again")
    meta = json.loads((run_dir / "trail.json").read_text())
    (run_dir / "trail.json").write_text(json.dumps(meta | {"id": "0123456789abcdef"}))
    code, _, err = _harness(capsys, *finished_sweep.args(root))
    line = _one_error_line(err)
    assert code == 2 and str(run_dir) in line and "belongs to trail 0123456789abcdef" in line, line
    assert read_status(run_dir)["state"] == "failed", "nothing was run in it"


@pytest.mark.e2e
def test_a_sweep_name_is_bound_to_its_trails_and_extend_adds_cells_of_their_own(root: Path, capsys) -> None:
    import pandas as pd

    args = ["--name", "mix", "--root", str(root)]
    code, out, err = _harness(capsys, "sweep", *tiny_trail("seed=1,2"), *args, "--no-report")
    assert code == 0, out + err
    code, out, err = _harness(capsys, "sweep", *tiny_trail("seed=1,2", "engine.lr=0.5"), *args)
    line = _one_error_line(err)
    assert code == 2 and "'mix'" in line and "--extend" in line, line
    assert len(trail_dirs(root / "mix")) == 2, "nothing was added"
    code, out, err = _harness(capsys, "sweep", *tiny_trail("seed=1,2", "engine.lr=0.5"), *args, "--extend")
    assert code == 0, out + err
    cells = pd.read_csv(root / "mix" / "report" / "cells.csv")
    finals = cells[cells["metric"] == "eval_final"]
    assert len(finals) == 2 and list(finals["n"]) == [2, 2], finals  # two cells of two seeds, never one of four
    assert finals["setting"].fillna("").str.contains("engine.lr=0.5").sum() == 1, finals


def test_the_report_never_pools_trails_whose_configs_differ_beyond_the_seed(tmp_path: Path) -> None:
    from synthetic_sweeps import engine_config, finish_sweep, write_trail
    from test_report_tables import axes, flat_trail

    from harness.report.load import load_journals
    from harness.report.tables import cell_table, trail_table

    dirs = []
    for seed, lr in ((1, 1e-4), (2, 1e-4), (1, 0.5), (2, 0.5)):
        cfg = engine_config("fixed") | {"seed": seed}
        cfg["engine"] = cfg["engine"] | {"lr": lr}
        dirs.append(write_trail(tmp_path / "s", axes(1, "grpo", seed), flat_trail(0.6 if lr < 0.1 else 0.1, 0.3),
                                dirname=f"lr{lr}-seed{seed}", config=cfg))
    trails = trail_table(load_journals(finish_sweep(tmp_path / "s", dirs)))
    cells = cell_table(trails)
    finals = cells[cells["metric"] == "eval_final"].set_index("setting")
    assert sorted(finals.index) == ["engine.lr=0.0001", "engine.lr=0.5"] and list(finals["n"]) == [2, 2], finals
    assert finals.loc["engine.lr=0.5", "mean"] == pytest.approx(0.1)


# --- checkpoints and caches know whose they are -----------------------------------------------------------------

@pytest.mark.e2e
def test_a_checkpoint_of_another_trail_is_refused_naming_file_owner_and_fix(finished_sweep: FinishedSweep,
                                                                           root: Path, capsys) -> None:
    sweep_dir = finished_sweep.copy_to(root)
    mine, other, *_ = trail_dirs(sweep_dir)
    shutil.copy(other / "checkpoint" / "state.pt", mine / "checkpoint" / "state.pt")  # same shapes, other trail
    record_outcome(mine, TrailState.FAILED, "to be resumed")
    code, out, err = _harness(capsys, *finished_sweep.args(root))
    assert code == 1, out + err
    reason = read_status(mine)["reason"]
    owner = json.loads((other / "trail.json").read_text())["id"]
    assert str(mine / "checkpoint" / "state.pt") in reason and f"belongs to trail {owner}" in reason, reason
    assert "Delete the trail's checkpoint directory" in reason and "\n" not in reason, reason


@pytest.mark.e2e
def test_a_checkpoint_of_other_shapes_is_refused_in_one_line_naming_the_file(finished_sweep: FinishedSweep,
                                                                             root: Path, capsys) -> None:
    """A checkpoint that names no trail (written before checkpoints did) is checked by its shapes: a policy of
    other shapes is refused in one line, never a torch 'size mismatch' dump that names no file."""
    import torch

    sweep_dir = finished_sweep.copy_to(root)
    mine = trail_dirs(sweep_dir)[0]
    path = mine / "checkpoint" / "state.pt"
    blob = torch.load(path, weights_only=True)
    del blob["trail_id"], blob["shapes"]
    key = next(k for k, v in blob["model"].items() if v.dim() == 2)
    blob["model"][key] = torch.zeros(blob["model"][key].shape[0] + 1, blob["model"][key].shape[1])
    torch.save(blob, path)
    record_outcome(mine, TrailState.FAILED, "to be resumed")
    code, out, err = _harness(capsys, *finished_sweep.args(root))
    assert code == 1, out + err
    reason = read_status(mine)["reason"]
    assert str(path) in reason and "other shapes" in reason and key in reason, reason
    assert "Delete the trail's checkpoint directory" in reason and "\n" not in reason, reason
    assert "size mismatch" not in reason, reason


def test_a_base_model_cache_of_other_shapes_is_refused_in_one_line(tmp_path: Path) -> None:
    import torch
    from omegaconf import OmegaConf

    from harness.backends.runner import run_trail_dir
    from harness.engines.embedded.base_model import cache_path
    from harness.engines.embedded.config import ModelConfig
    from harness.engines.embedded.model import TinyGPT
    from harness.spec.compose import compose_trail
    from harness.store.rundir import load_config, save_config

    overrides = tiny_trail(f"engine.cache_dir={tmp_path / 'cache'}")
    run_dir = tmp_path / "trail"
    save_config(run_dir, compose_trail(overrides), overrides)
    eng = load_config(run_dir).engine
    wider = TinyGPT(ModelConfig.of(OmegaConf.merge(eng, {"n_embd": 32})))  # another model's, under this one's name
    cached = cache_path(eng)
    cached.parent.mkdir(parents=True)
    torch.save({"state": wider.state_dict(), "info": {}}, cached)
    assert run_trail_dir(run_dir) == TrailState.FAILED
    reason = read_status(run_dir)["reason"]
    assert str(cached) in reason and "other shapes" in reason and f"Delete {cached}" in reason, reason
    assert "\n" not in reason and "size mismatch" not in reason, reason


# --- the journal repairs itself --------------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("line", [0, 2])
def test_a_zero_filled_journal_line_is_repaired_by_a_rerun_the_first_included(line: int, finished_sweep: FinishedSweep,
                                                                               root: Path, capsys) -> None:
    sweep_dir = finished_sweep.copy_to(root)
    run_dir = trail_dirs(sweep_dir)[0]
    lines = (run_dir / "journal.jsonl").read_bytes().splitlines(keepends=True)
    assert json.loads(lines[0])["step"] == 0, "the first line: step 0, the base model's eval"
    lines[line] = b"\0" * (len(lines[line]) - 1) + b"\n"
    (run_dir / "journal.jsonl").write_bytes(b"".join(lines))
    for _ in range(2):
        code, out, err = _harness(capsys, *finished_sweep.args(root))
        assert code == 0, out + err
        assert [r["step"] for r in read_records(run_dir)] == [0, 1, 2, 3, 4, 5, 6]
        assert len((run_dir / "journal.jsonl").read_bytes().splitlines()) == 7


# --- a full disk during the report -------------------------------------------------------------------------------

@pytest.fixture
def full_report_dir(finished_sweep: FinishedSweep, root: Path):
    """A copy of the finished sweep whose report/ is a tmpfs of 8 KiB: too small for a report. Skipped where this
    process may not mount file systems."""
    sweep_dir = finished_sweep.copy_to(root)
    report = sweep_dir / "report"
    report.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(report)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): a full disk is not tested")
    try:
        yield report
    finally:
        subprocess.run(["umount", str(report)], check=False)


@pytest.mark.e2e
def test_a_full_disk_in_the_report_names_the_file_leaves_nothing_partial_and_fails(
        full_report_dir: Path, finished_sweep: FinishedSweep, root: Path, capsys) -> None:
    code, _, err = _harness(capsys, "report", finished_sweep.name, "--root", str(root))
    line = _one_error_line(err)
    assert code == 1 and f"{full_report_dir}" in line and "(errno 28, ENOSPC)" in line, line
    assert list(full_report_dir.iterdir()) == [], "no partial file, no staging directory"
    args = [a for a in finished_sweep.args(root) if a != "--no-report"]  # the sweep's own report at its end
    code, out, err = _harness(capsys, *args)
    said = " ".join(out.split())
    assert code == 1 and f"report not written: {full_report_dir}" in said and "ENOSPC" in said, out + err
    assert list(full_report_dir.iterdir()) == []


# --- damaged records: one line each -----------------------------------------------------------------------------

@pytest.mark.parametrize("where, content", [
    ("sweep.json", b"[1, 2]"),
    ("sweep.json", b"\xff\xfe{}"),
    ("sweep.json", b'{"name": "four", "trails": "abc"}'),
    ("status.json", b'{"state": "done\xff"}'),
    ("trail.json", b"[]"),
])
def test_a_damaged_record_is_named_in_one_line(where: str, content: bytes, finished_sweep: FinishedSweep,
                                               root: Path, capsys) -> None:
    sweep_dir = finished_sweep.copy_to(root)
    path = (sweep_dir if where == "sweep.json" else trail_dirs(sweep_dir)[0]) / where
    path.write_bytes(content)
    for command in ("status", "report"):
        code, out, err = _harness(capsys, command, finished_sweep.name, "--root", str(root))
        line = _one_error_line(err)
        assert code == 2 and str(path) in line, line


# --- sizes are checked before anything is expanded --------------------------------------------------------------

def test_a_huge_range_is_counted_not_enumerated(tmp_path: Path) -> None:
    done = _cli(["sweep", "seed=range(0,50000000)", "tracking=none", "--root", str(tmp_path / "runs"), "--dry-run"],
                cwd=tmp_path, timeout=600)  # enumerated, it ran out of memory after a minute (a traceback)
    line = _one_error_line(done.stderr)
    assert done.returncode == 2 and "50000000 trails" in line and "max_trails" in line, line
    done = _cli(["sweep", "seed=range(0,50000000)", "tracking=none", "--root", str(tmp_path / "runs"), "--dry-run",
                 "--yes"], cwd=tmp_path, timeout=600)
    assert done.returncode == 2 and "more than one sweep can hold" in _one_error_line(done.stderr)
    assert not (tmp_path / "runs").exists()


def test_a_sweep_file_nested_fifty_thousand_deep_is_refused(tmp_path: Path, capsys) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("overrides: " + "[" * 50_000 + "]" * 50_000 + "\n")
    code, _, err = _harness(capsys, "sweep", str(deep), "--root", str(tmp_path / "runs"), "--dry-run")
    line = _one_error_line(err)
    assert code == 2 and str(deep) in line and "nested" in line, line


# --- user text is text ---------------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_root_that_looks_like_markup_is_printed_as_it_is(tmp_path: Path, capsys) -> None:
    root = tmp_path / "a[/]b[bold]c"
    code, out, err = _harness(capsys, "sweep", *tiny_trail("seed=1,2"), "--name", "m", "--root", str(root))
    assert code == 0, out + err
    assert str(root / "m") in " ".join(out.split()) or str(root / "m").replace(" ", "") in out.replace("\n", ""), out
    assert (root / "m" / "report" / "REPORT.md").is_file()  # two trails: the sweep writes its report


@pytest.mark.e2e
def test_an_unwritable_base_model_cache_says_how_to_set_another(tmp_path: Path) -> None:
    env = {"HOME": "/proc", "HARNESS_CACHE_DIR": ""}
    done = _cli(["sweep", *tiny_trail(), "--name", "home", "--root", str(tmp_path / "runs"), "--no-report"],
                cwd=tmp_path, env=env, timeout=300)
    text = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in text, text
    assert "HARNESS_CACHE_DIR" in text and "/proc/.cache/harness/base_models" in text, text


# --- Ctrl-C ---------------------------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_ctrl_c_three_times_stops_the_sweep_in_one_line_and_records_it(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", *tiny_trail("engine.steps=400", "seed=1,2"),
                             "--name", "c", "--root", str(root), "--no-report"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 900
    while not any(read_status(d).get("step") for d in (trail_dirs(root / "c") if (root / "c").exists() else [])):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in out + err, out + err
    assert json.loads((root / "c" / "sweep.json").read_text())["state"] == "cancelled"
    assert {read_status(d)["state"] for d in trail_dirs(root / "c")} <= {"cancelled", "done", "pending"}
