"""Observations a simulated device holds for its server (RFC 7641, LwM2M Observe).

Owns the observer list keyed by token: what path, in which content format, the last
payload sent and the Observe sequence number. `changed()` yields the notifications due
after a state change (only where the encoded value differs: notify on change). A Reset
to a notification or a reboot cancels. Called by `device` and `handlers`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aiocoap import CONTENT, Message

from reconciler.model.lwm2m import Path
from reconciler.simulator.coap import Addr

Render = Callable[[Path, int], bytes | None]  # path, format -> payload (None: gone)


@dataclass(slots=True)
class Observation:
    path: Path
    fmt: int
    remote: Addr
    last: bytes
    seq: int


class Observers:
    def __init__(self) -> None:
        self._by_token: dict[bytes, Observation] = {}

    def __len__(self) -> int:
        return len(self._by_token)

    def paths(self) -> list[Path]:
        return [o.path for o in self._by_token.values()]

    def add(self, token: bytes, path: Path, fmt: int, remote: Addr, payload: bytes) -> int:
        """Start (or restart, same token) an observation; returns the Observe number."""
        self._by_token[token] = Observation(path, fmt, remote, payload, 2)
        return 2

    def cancel(self, token: bytes) -> None:
        self._by_token.pop(token, None)

    def clear(self) -> None:
        self._by_token.clear()

    def changed(self, render: Render) -> Iterator[tuple[Message, Addr]]:
        """Notifications for every observation whose payload changed."""
        for token, obs in list(self._by_token.items()):
            payload = render(obs.path, obs.fmt)
            if payload is None or payload == obs.last:
                continue
            obs.last, obs.seq = payload, (obs.seq + 1) & 0xFFFFFF
            msg = Message(code=CONTENT, payload=payload, content_format=obs.fmt,
                          observe=obs.seq)
            msg.token = token
            yield msg, obs.remote
