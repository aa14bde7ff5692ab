"""`fota serve`: run the reconciler, the CoAP server and the HTTP API in one process.

Parses the flags into `ServeSettings` (environment `FOTA_*` variables fill in what
the flags leave out), sets up logging, and runs `service.run_service` until SIGINT or
SIGTERM, which shut it down cleanly. Wired into `fota` by `reconciler.cli`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from reconciler import heap
from reconciler.loopback import check_bind
from reconciler.serve import logformat
from reconciler.serve.loghandler import LoopBatchedHandler
from reconciler.serve.service import StartupError, run_service
from reconciler.serve.settings import ServeSettings, describe

log = logging.getLogger("reconciler.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # No defaults here: a flag given wins, else its FOTA_* variable, else the settings'
    # default (docs/operations.md lists them all).
    parser.add_argument("--repo", help="desired-state git repository (path or URL; default .)")
    parser.add_argument("--branch",
                        help="branch to follow (default main; for a URL the remote's "
                             "default branch); never the working tree's HEAD")
    parser.add_argument("--state", help="SQLite state file (default .fota/state.db), or a "
                                         "postgresql:// database URL")
    parser.add_argument("--coap", metavar="HOST:PORT|off",
                        help="LwM2M server address (default 127.0.0.1:5683); off: no "
                             "plain CoAP listener at all (needs --coaps)")
    parser.add_argument("--http", metavar="HOST:PORT",
                        help="HTTP API address (default 127.0.0.1:8080)")
    parser.add_argument("--public-uri", metavar="coap://HOST:PORT",
                        help="how devices reach the firmware server (default: --coap)")
    parser.add_argument("--coaps", metavar="HOST:PORT",
                        help="also listen for CoAPs (DTLS-PSK), e.g. 127.0.0.1:5684")
    parser.add_argument("--token", action="append",
                        help="accepted X-API-Token (repeatable; required off loopback)")
    parser.add_argument("--log-level", help="logging level (default INFO)")
    parser.add_argument("--log-format", choices=("human", "json"),
                        help="log lines for people (default) or one JSON object per line")
    parser.add_argument("--credentials", type=Path, metavar="FILE",
                        help="PSK credentials file (re-read on SIGHUP and when it changes)")
    parser.add_argument("--security-default", choices=("psk", "none"),
                        help="security of endpoints whose manifests say none (default none)")
    parser.add_argument("--coap-rto", choices=("adaptive", "fixed"),
                        help="our own Confirmables' retransmission timeouts: per-device "
                             "estimate (default) or RFC 7252's fixed 2-3 s")
    parser.add_argument("--node-id", help="this node's name in a store several nodes share "
                        "(default: host name and process id; docs/scaling.md)")


# flag dest -> the settings it sets (the others set the setting of their own name)
FLAG_SETTINGS = {"coap": ("coap", "coap_host", "coap_port"), "http": ("http_host", "http_port"),
                 "token": ("tokens",)}


def split_host_port(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` -> (host, port); raises ValueError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def settings_from(args: argparse.Namespace) -> ServeSettings:
    """The flags given, over the environment, over the defaults."""
    given: dict[str, object] = {name: getattr(args, name) for name in
                                ("repo", "branch", "state", "public_uri", "log_level",
                                 "log_format", "coaps", "credentials", "security_default",
                                 "node_id", "coap_rto")}
    for flag in ("coap", "http"):
        value = getattr(args, flag)
        if flag == "coap" and value == "off":
            given["coap"] = "off"  # no plain listener: refused without --coaps
        elif value is not None:
            host, port = split_host_port(value)
            given |= {f"{flag}_host": host, f"{flag}_port": port}
    given["tokens"] = tuple(args.token) if args.token else None
    return ServeSettings.load(given)  # a None is a flag not given


def run(args: argparse.Namespace) -> int:
    heap.configure_malloc()  # before any thread: memory back after a big revision
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(f"fota serve: {describe(exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"fota serve: {exc}", file=sys.stderr)
        return 2
    try:
        check_bind(settings.http_host, settings.tokens)
    except ValueError as exc:
        print(f"fota serve: {exc}; a token is given with --token", file=sys.stderr)
        return 2
    handler = LoopBatchedHandler(sys.stderr)
    handler.setFormatter(logformat.formatter(settings.log_format))
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    try:
        asyncio.run(_main(settings))
    except StartupError as exc:  # bad configuration found on start: one line, no traceback
        handler.flush()  # the log so far comes before the reason it ends
        if settings.log_format == "json":  # a shipper reads this line too
            log.error("fota serve: %s", exc)
        else:
            print(f"fota serve: {exc}", file=sys.stderr)
        return 2
    finally:
        handler.flush()
    return 0


async def _main(settings: ServeSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_service(settings, stop)
