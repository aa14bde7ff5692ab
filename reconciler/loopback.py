"""The loopback-only rule of the HTTP API: which hosts are this machine alone.

Its own small module, outside `reconciler.api`, so `fota serve` checks its `--http`
address before anything starts without importing FastAPI (over a second of a
restart's time to its first CoAP answer); `reconciler.api.access` re-exports both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: Sequence[str]) -> None:
    """Raise ValueError when `host` is reachable from elsewhere and no token is set."""
    if not any(tokens) and not is_loopback(host):
        raise ValueError(f"refusing to serve the API on {host}: no API token is configured; "
                         "set one or bind to 127.0.0.1 / ::1")
