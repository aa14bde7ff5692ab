"""`fota status [COLLECTION] [--watch [--timeout S]]` and `fota status device ID`: a
running `fota serve` seen from the terminal, over its HTTP API (`--api`, or FOTA_API;
token from FOTA_API_TOKEN, as `fota plan`).

Exit codes, as `kubectl rollout status`: 0 the rollout succeeded (or, without --watch,
the status was printed), 1 it halted or ended with failed devices, 2 the API could not
tell us (unreachable, an error, an unknown id, the timeout). Wired into `fota` by
`reconciler.cli`.
"""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import quote

from reconciler.watch import render
from reconciler.watch.client import Api, ApiError
from reconciler.watch.follow import Unreachable, follow
from reconciler.watch.render import BarsView, LiveView, PlainView

DEFAULT_API = "http://127.0.0.1:8080"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="*", metavar="COLLECTION | device ID",
                        help="one collection's rollout, or one device's conditions and "
                             "event timeline (default: every collection)")
    parser.add_argument("--api", default=os.environ.get("FOTA_API", DEFAULT_API),
                        metavar="URL", help=f"the API of fota serve (FOTA_API; default "
                                            f"{DEFAULT_API}); token from FOTA_API_TOKEN")
    parser.add_argument("--watch", action="store_true",
                        help="follow the rollout until it ends: exit 0 when every device "
                             "is Current, 1 when it halts or devices failed")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="with --watch: give up (exit 2) after this long")


def run(args: argparse.Namespace) -> int:
    api = Api(args.api, os.environ.get("FOTA_API_TOKEN"))
    fancy = sys.stdout.isatty()
    try:
        if args.what[:1] == ["device"]:
            if len(args.what) != 2:
                return _usage("fota status device ID")
            render.device(api.get(f"/status/devices/{quote(args.what[1], safe='')}"),
                          sys.stdout)
            return 0
        if len(args.what) > 1:
            return _usage("fota status [COLLECTION]")
        only = args.what[0] if args.what else None
        if only is not None:
            api.get(f"/collections/{quote(only, safe='')}")  # 400/404 for a wrong id
        if not args.watch:
            render.summary(api.get("/status"), only, sys.stdout, fancy)
            return 0
        return _watch(api, only, BarsView(sys.stdout) if fancy else PlainView(sys.stdout),
                      args.timeout)
    except (ApiError, Unreachable) as exc:
        print(f"fota status: {exc}", file=sys.stderr)
        return 2


def _watch(api: Api, only: str | None, view: LiveView, timeout: float | None) -> int:
    try:
        outcome = follow(api, only, view, timeout)
    finally:
        view.close()
    if outcome is None:
        print(f"fota status: the rollout did not end within {timeout:g}s", file=sys.stderr)
        return 2
    print(f"rollout {outcome.value}", file=sys.stdout)
    return outcome.exit_code


def _usage(form: str) -> int:
    print(f"usage: {form}", file=sys.stderr)
    return 2
