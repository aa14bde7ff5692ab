"""Moving a firmware package onto a simulated device: block-wise pull and push.

Pull: `download()` fetches a coap:// Package URI with Block2 (RFC 7959) from a fresh
socket (`pull.BlockClient`; as Zephyr's FOTA client does, so the server must authorise
by URI, not by address), starting at the device's block size and following a server
that answers with smaller blocks. Push: `PushReceiver` takes Block1 writes to /5/0/0 in
order and answers 2.31 Continue until the last block; as a conforming device, it keeps a
partial transfer for a while (a push cut short by loss resumes at the next block) and
answers 4.08 to a block it cannot continue. Faults that bite during transfer
(slow link, link lost half way) are applied here. Called by `device`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiocoap import Code

from reconciler.model.lwm2m import UpdateResult
from reconciler.simulator.coap import Reliability, RequestReset, RequestTimeout
from reconciler.simulator.firmware import PackageUri
from reconciler.simulator.pull import BlockClient


@dataclass(frozen=True, slots=True)
class PullOptions:
    block_size: int = 512  # 16..1024, a power of two
    flash_size: int = 16 * 1024 * 1024  # larger packages end in Update Result 2
    slow_block_delay: float = 0.0  # slow link: wait this long before each block
    lose_link: bool = False  # connection lost half way (Update Result 4)
    reliability: Reliability = field(default_factory=Reliability)
    on_block: Callable[[], None] | None = None  # called per block received (counting)
    psk: tuple[bytes, bytes] | None = None  # (identity, key) for a coaps:// URI


def size_exponent(block_size: int) -> int:
    if block_size not in (16, 32, 64, 128, 256, 512, 1024):
        raise ValueError(f"block size must be a power of two in 16..1024: {block_size}")
    return block_size.bit_length() - 5


async def resolve(host: str, port: int) -> tuple[str, int]:
    """(address, port) to send to. An address literal (what a server's Package URI
    usually holds) is used as it is: getaddrinfo runs in the loop's thread pool, and a
    thousand downloads at once paid a thread hop each for it (profiled: ~13% of the
    simulator's samples)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]"))), port
    except ValueError:
        pass  # a name: ask the resolver
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    address = infos[0][4]
    return str(address[0]), int(address[1])


async def download(uri: PackageUri, options: PullOptions) -> bytes | UpdateResult:
    """The package bytes, or the Update Result that ended the download."""
    try:
        remote = await resolve(uri.host, uri.port)
    except OSError:
        return UpdateResult.INVALID_URI
    client = BlockClient(remote, options.reliability)
    await client.open("::1" if ":" in remote[0] else "127.0.0.1",
                      options.psk if uri.secure else None)
    try:
        return await _blocks(client, uri, options)
    except (RequestTimeout, RequestReset):
        return UpdateResult.CONNECTION_LOST
    finally:
        client.close()


async def _blocks(client: BlockClient, uri: PackageUri,
                  options: PullOptions) -> bytes | UpdateResult:
    szx, received, blocks = size_exponent(options.block_size), bytearray(), 0
    lose_after: int | None = None  # with lose_link: blocks fetched before the link drops
    etag: bytes | None = None
    while True:
        if options.slow_block_delay:
            await asyncio.sleep(options.slow_block_delay)
        if lose_after is not None and blocks >= lose_after:
            return UpdateResult.CONNECTION_LOST
        num = len(received) >> (szx + 4)
        response = await client.get(uri.path, uri.query, num << 4 | szx)
        if not response.successful:
            return _failure(response.code)
        block = response.block2
        if block is None:  # the server sent it all at once
            return UpdateResult.CONNECTION_LOST if options.lose_link else response.payload
        if block[0] << (block[2] + 4) != len(received):
            return UpdateResult.CONNECTION_LOST
        if blocks == 0:
            etag = response.etag
        elif response.etag != etag:
            # The image changed under us: what was assembled could never verify.
            return UpdateResult.INTEGRITY_CHECK_FAILURE
        received += response.payload
        blocks += 1
        if options.on_block is not None:
            options.on_block()
        total = response.size2 or 0
        if len(received) > options.flash_size or total > options.flash_size:
            return UpdateResult.NOT_ENOUGH_FLASH
        if not block[1]:
            return UpdateResult.CONNECTION_LOST if options.lose_link else bytes(received)
        szx = min(szx, block[2])
        if options.lose_link and lose_after is None:
            lose_after = max(1, (total >> (szx + 4)) // 2)


def _failure(code: int) -> UpdateResult:
    # 4.xx: the server does not know this package (any more): the URI is no good.
    return UpdateResult.INVALID_URI if code >> 5 == 4 else UpdateResult.CONNECTION_LOST


# How long a partial push is kept after its last block: RFC 7252's EXCHANGE_LIFETIME,
# longer than a server's retransmissions of one block and its pause before resuming.
PARTIAL_KEEP = 247.0


class PushReceiver:
    """Block1 reassembly of a package written to /5/0/0 (RFC 7959 section 2.5)."""

    def __init__(self, flash_size: int, keep: float = PARTIAL_KEEP,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.flash_size, self.keep, self._clock = flash_size, keep, clock
        self.data = bytearray()
        self.active = False
        self._last = 0.0  # when the partial transfer last grew

    def receive(self, num: int, more: bool, szx: int, payload: bytes) -> Code:
        """Code to answer: CONTINUE (more), CHANGED (complete) or an error code. A block
        at or before the next one expected continues the transfer from there (its 2.31
        may have been lost, or the server resumes); one after it, or with no partial
        transfer held (none begun, or let go after `keep`), is 4.08."""
        now, offset = self._clock(), num << (szx + 4)
        if num == 0:
            self.data, self.active = bytearray(), True
        elif not self.active or now - self._last > self.keep:
            self.data, self.active = bytearray(), False
            return Code.REQUEST_ENTITY_INCOMPLETE
        elif offset > len(self.data):
            return Code.REQUEST_ENTITY_INCOMPLETE  # a gap: the blocks before it are missing
        else:
            del self.data[offset:]
        self._last = now
        if more and len(payload) != 1 << (szx + 4):
            return Code.BAD_REQUEST
        self.data += payload
        if len(self.data) > self.flash_size:
            self.active = False
            return Code.REQUEST_ENTITY_TOO_LARGE
        if more:
            return Code.CONTINUE
        self.active = False
        return Code.CHANGED
