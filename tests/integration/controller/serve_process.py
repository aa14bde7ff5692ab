"""`fota serve` as a real child process (the serve-process, restart and init tests):
started on a given state file (or PostgreSQL database) and CoAP port, its readiness
awaited from its log, killed with SIGKILL on demand, and always reaped. The log goes to
`serve.log` beside the state file (or in `log_dir`), to read when a test fails."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

# The child's ports, for the tests that import them from here (builders.ports says why
# not port 0 and release).
from builders.ports import free_tcp_port as free_tcp_port
from builders.ports import free_udp_port as free_udp_port
from builders.tools import communicated
from controller_harness import FAST

ENV = {f"FOTA_{k.upper()}": str(v) for k, v in FAST.items()
       if k not in ("coap_port", "http_port")}


def serve_args(repo: Path, state: Path | str, coap_port: int, http_port: int = 0
               ) -> list[str]:
    return [sys.executable, "-m", "reconciler.cli", "serve", "--repo", str(repo),
            "--state", str(state), "--coap", f"127.0.0.1:{coap_port}",
            "--http", f"127.0.0.1:{http_port}"]


@asynccontextmanager
async def fota_serve(repo: Path, state: Path | str, coap_port: int,
                     env: Mapping[str, str] | None = None, http_port: int = 0,
                     log_dir: Path | None = None,
                     ) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start `fota serve`, wait for its ready line, and make sure it is gone afterwards."""
    async with serve_child(serve_args(repo, state, coap_port, http_port),
                           (log_dir or Path(state).parent) / "serve.log", env, 30) as (proc, _):
        yield proc


@asynccontextmanager
async def serve_child(args: list[str], log_path: Path, env: Mapping[str, str] | None,
                      ready_within: float
                      ) -> AsyncIterator[tuple[asyncio.subprocess.Process, bytes]]:
    """`args` as a child process with the tests' settings: (the process, its ready line)
    once it logged "fota serve ready"; its log goes to `log_path`; killed if still
    running and always reaped afterwards."""
    log = log_path.open("ab")
    proc = await asyncio.create_subprocess_exec(
        *args, stderr=asyncio.subprocess.PIPE, env={**os.environ, **ENV, **(env or {})})
    assert proc.stderr is not None
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(ready_within):
            while b"fota serve ready" not in (line := await proc.stderr.readline()):
                log.write(line)
                assert line, f"{log_path.stem}: fota serve exited before it was ready"
        log.write(line)
        drain = asyncio.create_task(_drain(proc.stderr, log))
        yield proc, line
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        if drain is not None:
            await drain
        log.close()


async def _drain(stream: asyncio.StreamReader, log: BinaryIO) -> None:
    while line := await stream.readline():
        log.write(line)
        log.flush()


async def run_to_exit(args: list[str], timeout: float = 30) -> tuple[int, str]:
    """Run a command to its end; (exit code, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *args, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        env={**os.environ, **ENV})
    code, _, err = await communicated(proc, timeout)
    return code, err.decode(errors="replace")


async def until_all_current(state: Path, count: int, timeout: float = 20.0) -> None:
    """Poll the store the child process writes (no event crosses the process boundary)
    until `count` devices show Current for their target."""
    from reconciler.store import open_reader

    reader = open_reader(state)
    try:
        async with asyncio.timeout(timeout):
            while True:
                views = [v for c in reader.collections() for v in reader.devices(c.collection_id)]
                if len(views) == count and all(v.state == "Current" for v in views):
                    return
                await asyncio.sleep(0.05)
    finally:
        reader.close()
