"""The command line takes the overrides of `run` and `sweep` wherever they stand among the options, as README's
`bash scripts/demo.sh --name mine engine.steps=200` (= `harness sweep demo --name mine engine.steps=200`) needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main, parse_args

SWEEP_ORDERS = [
    ["sweep", "demo", "--name", "mine", "engine.steps=200", "--dry-run"],
    ["sweep", "--name", "mine", "demo", "--dry-run", "engine.steps=200"],
    ["sweep", "--dry-run", "--name", "mine", "demo", "engine.steps=200"],
    ["sweep", "demo", "engine.steps=200", "--name", "mine", "--dry-run"],
    ["-v", "sweep", "demo", "--name=mine", "-v", "engine.steps=200", "--dry-run"],
]


@pytest.mark.parametrize("argv", SWEEP_ORDERS, ids=[" ".join(a) for a in SWEEP_ORDERS])
def test_sweep_overrides_may_follow_options(argv: list[str]) -> None:
    args = parse_args(argv)
    assert (args.command, args.args, args.name, args.dry_run) == ("sweep", ["demo", "engine.steps=200"], "mine", True)


@pytest.mark.parametrize("argv", [
    ["run", "stale=1", "--root", "elsewhere", "algo=m2po"],
    ["run", "--root", "elsewhere", "stale=1", "algo=m2po"],
    ["run", "stale=1", "algo=m2po", "--root", "elsewhere"],
])
def test_run_overrides_may_follow_options(argv: list[str]) -> None:
    args = parse_args(argv)
    assert (args.command, args.overrides, args.root) == ("run", ["stale=1", "algo=m2po"], "elsewhere")


@pytest.mark.parametrize("argv,needle", [
    (["sweep", "demo", "--nmae", "mine", "stale=1"], "unrecognized arguments: --nmae"),
    (["run", "stale=1", "--bogus"], "unrecognized arguments: --bogus"),
    (["status", "demo", "extra"], "unrecognized arguments: extra"),
    (["report", "demo", "--source", "mlflow", "more"], "unrecognized arguments: more"),
])
def test_unknown_arguments_are_still_refused(argv: list[str], needle: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    assert needle in capsys.readouterr().err


def test_verbose_is_off_unless_given() -> None:
    assert parse_args(["sweep", "demo", "stale=1"]).verbose is False
    assert parse_args(["run", "stale=1"]).verbose is False


def test_readme_demo_arguments_reach_the_sweep(tmp_path: Path, capsys, monkeypatch) -> None:
    """scripts/demo.sh passes its arguments after `harness sweep demo`: the README's first extra argument works."""
    demo_sh = (Path(__file__).resolve().parent.parent / "scripts" / "demo.sh").read_text()
    assert '.venv/bin/harness sweep demo "$@"' in demo_sh
    from rich.console import Console

    from harness.orchestration import sweep

    monkeypatch.setattr(sweep, "console", Console(soft_wrap=True, width=200))  # one table row per line
    rc = main(["sweep", "demo", "--name", "mine", "engine.steps=2", "--dry-run", "--root", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "mine: 15 trails on local (dry run)" in out
    assert out.count("engine.steps=2") == 15
    assert not (tmp_path / "runs").exists()
