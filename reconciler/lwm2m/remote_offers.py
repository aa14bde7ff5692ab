"""Offers another node handed out, served here: a download the balancer sends to this
node after a failover continues block for block.

Offers live in the shared store (token -> device, image, expiry) and every node has the
repository, so a block GET of `/fw/<token>` this node does not know is looked up there
(`find`: the store and the image bytes, off the loop) and, when found, filed in the
firmware repository under its old token and expiry before it is answered. What an
outsider can make us do is bounded: tokens of the offer shape only, at most
`MAX_PENDING` lookups at once (more are answered 4.04, as the device's retransmission
finds the lookup done), and a token found nowhere is remembered for `MISS_SECONDS` (at
most `MAX_MISSES` of them) and answered 4.04 without a lookup. Set on
`Lwm2mServer.firmware.remote` by `serve` when several nodes share the store; the fast
path hands a request for an unknown token to aiocoap, whose resource awaits `fetch`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from reconciler.model.lwm2m import FirmwareOffer

Find = Callable[[str], Awaitable[tuple[FirmwareOffer, bytes] | None]]
MAX_PENDING = 32
MAX_MISSES = 4096
MISS_SECONDS = 60.0
TOKEN_LENGTH = 24  # secrets.token_urlsafe(18), as FirmwareRepository.offer makes them


class Files(Protocol):
    def restore(self, record: FirmwareOffer, data: bytes) -> str: ...


class RemoteOffers:
    def __init__(self, files: Files, find: Find,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._files, self._find, self._monotonic = files, find, monotonic
        self._pending: dict[str, asyncio.Future[bool]] = {}
        self._misses: OrderedDict[str, float] = OrderedDict()  # token -> until

    def may_have(self, token: str) -> bool:
        """Worth a lookup: shaped like our tokens, not a recent miss, room for one."""
        if len(token) != TOKEN_LENGTH:
            return False
        if token in self._pending:
            return True
        until = self._misses.get(token)
        if until is not None and until > self._monotonic():
            return False
        return len(self._pending) < MAX_PENDING

    async def fetch(self, token: str) -> bool:
        """File the offer at `token` if the store has it; True when it is filed now."""
        pending = self._pending.get(token)
        if pending is not None:
            return await asyncio.shield(pending)
        if not self.may_have(token):
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            found = await self._find(token)
            if found is not None:
                self._files.restore(*found)
            else:
                self._missed(token)
            future.set_result(found is not None)
        except Exception:
            self._missed(token)
            future.set_result(False)
        finally:
            del self._pending[token]
        return future.result()

    def _missed(self, token: str) -> None:
        self._misses[token] = self._monotonic() + MISS_SECONDS
        self._misses.move_to_end(token)
        while len(self._misses) > MAX_MISSES:
            self._misses.popitem(last=False)
