"""`harness` command line: thin dispatch to the modules that do the work (imported lazily for a fast start)."""

from __future__ import annotations

import argparse
import gc
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from harness.errors import HarnessError, describe_os_error
from harness.logs import configure_logging, dump_stacks_on_sigusr1

VERBOSE_HELP = "show libraries' INFO logging (MLflow, alembic, urllib3, …), quiet otherwise"
# The subcommands whose positional arguments are Hydra overrides. Their overrides may come before, between and after
# their options (`harness sweep demo --name mine engine.steps=200`): argparse's default parse stops the positionals at
# the first option, and it cannot parse a parser with subcommands intermixed, so these subcommands' own parsers
# parse their arguments a second time with parse_intermixed_args.
INTERMIXED = ("run", "sweep")


def _parser() -> Tuple[argparse.ArgumentParser, Dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="harness", description="Sweeps of RL trails under stale data.")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    # also accepted after the command (`harness sweep demo -v`); SUPPRESS keeps a subcommand from resetting it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    commands: Dict[str, argparse.ArgumentParser] = {}

    def add(name: str, help: str) -> argparse.ArgumentParser:
        commands[name] = sub.add_parser(name, help=help, parents=[common])
        return commands[name]

    run = add("run", help="run one trail in the foreground")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. stale=256 algo=m2po")
    run.add_argument("--root", default=None, help="directory holding sweeps (default: config key root, 'runs')")

    sweep = add("sweep", help="run a sweep: [SWEEP_FILE] [overrides…] with Hydra's override grammar")
    sweep.add_argument("args", nargs="*", help="a named sweep (demo, finding, …) or a sweep file path, then overrides")
    sweep.add_argument("--name", default=None, help="sweep name (default: the sweep file's name or a hash)")
    sweep.add_argument("--dry-run", action="store_true", help="validate and print the trail table; launch nothing")
    sweep.add_argument("--detach", action="store_true",
                       help="submit and return (backends whose jobs outlive this command)")
    sweep.add_argument("--no-report", action="store_true", help="do not write the report when the sweep ends")
    sweep.add_argument("--wait", action="store_true",
                       help="if another `harness sweep` runs this sweep, wait for it to end instead of refusing")
    sweep.add_argument("--yes", action="store_true", help="run a sweep larger than sweep.max_trails (default 1000)")
    sweep.add_argument("--extend", action="store_true",
                       help="add trails the sweep does not have yet (another config under its name) as new cells")
    sweep.add_argument("--preflight", action="store_true",
                       help="with --dry-run: also run the engines' own validation (for AReaL: runs engine.python)")
    sweep.add_argument("--root", default=None)

    status = add("status", help="print a sweep's trail table")
    status.add_argument("sweep")
    status.add_argument("--root", default="runs")

    report = add("report", help="write the markdown trail report of a sweep")
    report.add_argument("sweep")
    report.add_argument("--root", default="runs")
    report.add_argument("--out", default=None, help="output directory (default: <sweep dir>/report)")
    report.add_argument("--source", choices=("journal", "mlflow"), default="journal")

    sync = add("sync", help="bring MLflow up to date with a sweep's journals")
    sync.add_argument("sweep")
    sync.add_argument("--root", default="runs")
    sync.add_argument("--uri", default=None, help="tracking URI (default: the one in each trail's config)")
    return parser, commands


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line, with the overrides of `run` and `sweep` taken wherever they stand among the options."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = _parser()
    args, extras = parser.parse_known_args(argv)
    if args.command in INTERMIXED:
        after_command = argv[argv.index(args.command) + 1:]  # the top level takes only flags: its first word is it
        top = argparse.Namespace(command=args.command, verbose=args.verbose)
        return commands[args.command].parse_intermixed_args(after_command, top)
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    configure_logging(verbose=args.verbose)
    dump_stacks_on_sigusr1()
    try:
        if args.command == "run":
            from harness.commands import main_run

            return main_run(args.overrides, root=args.root)
        if args.command == "sweep":
            from harness.backends.spawn import end_spare, start_spare

            if not (args.dry_run or args.detach):
                start_spare()  # a warm worker importing while the sweep composes (harness.backends.spawn)
            try:
                from harness.orchestration.sweep import main_sweep

                return main_sweep(args.args, name=args.name, dry_run=args.dry_run, detach=args.detach,
                                  report=not args.no_report, root=args.root, wait=args.wait,
                                  run_preflight=args.preflight, yes=args.yes, extend=args.extend)
            finally:
                end_spare()
        if args.command == "status":
            from harness.commands import main_status

            return main_status(args.sweep, root=args.root)
        if args.command == "report":
            from harness.commands import main_report

            return main_report(args.sweep, root=args.root, out=args.out, source=args.source)
        if args.command == "sync":
            from harness.commands import main_sync

            return main_sync(args.sweep, root=args.root, uri=args.uri)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only root: the path and the errno, not a traceback
        print(f"harness: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before or after the sweep's own handling: one line, not a traceback
        print("harness: error: interrupted", file=sys.stderr)
        return 130
    except (RecursionError, MemoryError) as exc:  # input too large or too deep for what checks it first
        print(f"harness: error: the input is too large or too deeply nested to handle ({type(exc).__name__})",
              file=sys.stderr)
        return 2
    return 2


def run() -> None:
    """The `harness` command: main, then an exit that spares the interpreter's last collections a pass over every
    object Hydra, OmegaConf and rich made (a tenth of a second of a short sweep's wall time). Everything the command
    wrote is closed by then; atexit handlers still run."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
