"""`fota serve` nodes as real child processes sharing one PostgreSQL database, behind the
forwarding fixture: each started with its own `--node-id`, CoAP and HTTP ports and a
public URI naming the forwarder (so downloads follow the same affinity), its readiness
awaited from its log, killed with SIGKILL on demand, and always reaped. Logs go to
`<name>.log` in the given directory, to read when a test fails."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from forwarder import Forwarder
from serve_process import serve_child

from reconciler.simulator import Fleet, SimDevice


@dataclass
class Node:
    name: str
    coap_port: int
    http_port: int
    proc: asyncio.subprocess.Process

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.coap_port)

    def get_text(self, path: str) -> str:
        """GET `path` of this node's API (blocking: call in a thread)."""
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def get_json(self, path: str) -> Any:
        return json.loads(self.get_text(path))

    def readyz(self) -> tuple[int, dict[str, object]]:
        """(status, body) of GET /readyz (blocking: call in a thread)."""
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@asynccontextmanager
async def fota_node(name: str, repo: Path, state: str, public_uri: str | None,
                    logs: Path, env: Mapping[str, str] | None = None) -> AsyncIterator[Node]:
    """On ports the node picks itself (read from its ready line: a port chosen here could
    be taken by anyone while it starts); `public_uri` None: its own address (downloads
    bypass the balancer)."""
    args = [sys.executable, "-m", "reconciler.cli", "serve", "--repo", str(repo),
            "--state", state, "--node-id", name, "--coap", "127.0.0.1:0",
            "--http", "127.0.0.1:0"]
    if public_uri is not None:
        args += ["--public-uri", public_uri]
    async with serve_child(args, logs / f"{name}.log", env, 60) as (proc, line):
        ports = re.search(rb"coap [\d.]+:(\d+), http [\d.]+:(\d+)", line)
        assert ports is not None, line
        yield Node(name, int(ports[1]), int(ports[2]), proc)


@asynccontextmanager
async def three_nodes(forwarder: Forwarder, repo: Path, state: str, public_uri: str | None,
                      logs: Path, env: Mapping[str, str] | None = None,
                      states: Mapping[str, str] | None = None
                      ) -> AsyncIterator[list[Node]]:
    """Three nodes n1..n3, started together (they migrate one after the other), then put
    behind `forwarder`; `states` gives a node another URL of the database (a link)."""
    async with AsyncExitStack() as stack:
        starting = [stack.enter_async_context(
            fota_node(name, repo, (states or {}).get(name, state), public_uri, logs, env))
            for name in ("n1", "n2", "n3")]
        nodes = list(await asyncio.gather(*starting))
        forwarder.backends = [node.address for node in nodes]
        yield nodes


async def register_at(forwarder: Forwarder, nodes: Sequence[Node], fleet: Fleet,
                      devices: Sequence[SimDevice], timeout: float = 60) -> None:
    """Start `devices` of `fleet` while only `nodes` are behind the forwarder, so they
    register there whatever the hash says (their sessions stay with them); then the
    forwarder's nodes are as before."""
    before = list(forwarder.backends)
    forwarder.backends = [node.address for node in nodes]
    try:
        await asyncio.gather(*(device.start() for device in devices))
        await fleet.wait_all(lambda d: d.registered, timeout, devices=devices)
    finally:
        forwarder.backends = before


def via_port(url: str, port: int) -> str:
    """The database URL over loopback TCP to `port` (a link the test can cut)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    query = urllib.parse.urlencode({"options": info["options"]}) if "options" in info else ""
    return (f"postgresql://{info.get('user', 'fota')}@127.0.0.1:{port}/{info['dbname']}"
            + (f"?{query}" if query else ""))
