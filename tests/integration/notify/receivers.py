"""HTTP receivers on loopback for the notification tests: they record every request.

`Receiver` speaks HTTP/1.1 (keep-alive, Content-Length bodies) on a free port through
asyncio's own server, and answers as its `answer(n)` says for the n-th request (from 1):
a status code, or `HANG` to read the request and never answer until `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HANG = -1


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lowercase names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def healthy(_: int) -> int:
    return 200


def failing_first(n_failures: int, code: int = 503) -> Callable[[int], int]:
    return lambda n: code if n <= n_failures else 201


def hanging(_: int) -> int:
    return HANG


class Receiver:
    def __init__(self, answer: Callable[[int], int] = healthy) -> None:
        self.answer = answer
        self.requests: list[Received] = []  # every request read, answered or not
        self.answered: list[Received] = []  # those answered with a 2xx
        self._changed = asyncio.Event()
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # an idle keep-alive connection reads EOF and ends
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while (request := await _read(reader)) is not None:
                self.requests.append(request)
                code = self.answer(len(self.requests))
                if 200 <= code < 300:
                    self.answered.append(request)
                self._changed.set()
                if code == HANG:
                    await self._release.wait()
                    return
                writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\n{{}}".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read(reader: asyncio.StreamReader) -> Received | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip()
               for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Received(method, path, headers, body)
