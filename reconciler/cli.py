"""The `fota` console script: the composition root. Nothing imports this module.

Each subcommand lives in the package that owns its work and exposes
`add_arguments(parser)` and `run(args) -> int`; this module only wires them up, importing
each lazily so `fota validate` never pays for aiocoap or FastAPI.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import os
import sys
from collections.abc import Sequence

from reconciler import allocator

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("reconciler.sources.init_cmd", "start a new desired-state repository"),
    "validate": ("reconciler.sources.validate_cmd", "check a desired-state repository"),
    "publish": ("reconciler.sources.publish_cmd", "add a firmware image to the repository"),
    "simulate": ("reconciler.simulator.cmd", "run a fleet of simulated LwM2M devices"),
    "serve": ("reconciler.serve.cmd", "run the reconciler, CoAP and HTTP servers"),
    "plan": ("reconciler.review.cmd", "show what a change of desired state would do"),
    "status": ("reconciler.watch.cmd", "show or follow a rollout over the HTTP API"),
}


def _version() -> str:
    """The installed distribution's version (pyproject.toml), as pip shows it."""
    try:
        return importlib.metadata.version("fota-gitops")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown (not installed)"


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fota", description="GitOps firmware-over-the-air for LwM2M devices.")
    parser.add_argument("--version", action="version", version=f"fota {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = argv[0] if argv else None
    for name, (module_name, help_text) in COMMANDS.items():
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported, so one broken optional
        # dependency never takes the other commands down with it.
        if name == wanted:
            module = importlib.import_module(module_name)
            module.add_arguments(cmd_parser)
            cmd_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if argv is None and args_list[:1] == ["serve"]:
        # A real command line only, never a test's main([...]) in its own process: the
        # server's default allocator is chosen by executing it again (same PID), first
        # thing, before any thread or file (reconciler/allocator.py says why).
        allocator.exec_with_default()
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    try:
        code: int = args._run(args)
        sys.stdout.flush()  # a reader gone early shows here, not in the exit's own flush
    except BrokenPipeError:
        # `fota validate | head`: the reader stopped before the end. No traceback; exit 1,
        # since what it did not read may have mattered (a command whose work is done,
        # like publish, handles this itself and keeps its exit code).
        quiet_stdout()
        return 1
    return code


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
