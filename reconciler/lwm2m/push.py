"""Push delivery: write /5/0/0 block-wise with Block1 (RFC 7959 §2.5), opaque content.

For devices whose /5/0/9 says push (1) or both (2). `push_firmware` sends PUT blocks of up
to 1024 bytes with Block1 (num, more, szx) and Size1 on the first, waits for 2.31 Continue
after each and 2.04 Changed after the last, and follows a device that asks for smaller
blocks in its 2.31 (the next block number is recomputed from the byte offset). Errors come
back in our tree: DeviceRequestFailed (an error code), DeviceTimeout, TemporaryError.

A `Transfer` records how far the device acknowledged: a push cut short by loss resumes
from it (the device, the server of the Block1 transfer, keeps what it took; RFC 7959
§2.5). A device that lost it answers the resumed block 4.08 Request Entity Incomplete:
the push starts again at block 0, and says so. A 4.08 to a block of a push that was
not resumed (the device restarted mid-push) is an interruption, not a refusal: the
resumption, bounded by the engine, finds the device holds nothing and starts over.
A push the server must end at once (the device registered again, moved or left: no
answer can come from where the blocks go) is cut through `Transfer.cut`; after each
block acknowledged, `Transfer.checkpoint` is told (and may make the push wait for the
write of its position: `pushes.py`). Called by
`DeviceClient.push_firmware` with the server's context and the device's remote.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiocoap import Message
from aiocoap import error as coap_error
from aiocoap.numbers.codes import Code

from reconciler.errors import DeviceRequestFailed, DeviceTimeout, FotaError, TemporaryError
from reconciler.model.lwm2m import FW_PACKAGE, Path

from .coaperrors import abandon
from .firmware import MAX_SZX, OPAQUE

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Transfer:
    """How far one push came: the bytes the device acknowledged with 2.31 (always whole
    blocks) and the block size in use. Updated as the push goes; read when it stops."""

    size: int  # the package's length
    szx: int = MAX_SZX
    offset: int = 0  # bytes acknowledged: the next block starts here
    # Set (with the error to end on) while blocks go out, to end the push at once.
    cut: asyncio.Future[FotaError] | None = field(default=None, compare=False)
    # Told after each block the device acknowledged (`pushes.Pushes` notes the position
    # for a restart); what it returns is waited for before the next block goes out.
    checkpoint: Callable[[Transfer], asyncio.Future[None] | None] | None = field(
        default=None, compare=False)

    @property
    def block(self) -> int:
        """The next block to send, at the block size in use."""
        return self.offset >> (self.szx + 4)

    @property
    def blocks(self) -> int:
        return -(-self.size // (1 << (self.szx + 4)))


class Requester(Protocol):
    """What sends the blocks: an aiocoap `Context`, or `Lwm2mServer` (its socket)."""

    def request(self, message: Message, handle_blockwise: bool = True) -> Any: ...


async def push_firmware(
    context: Requester,
    data: bytes,
    *,
    timeout: float,
    remote: Any = None,
    uri: str | None = None,
    path: Path = FW_PACKAGE,
    szx: int = MAX_SZX,
    transfer: Transfer | None = None,
) -> None:
    """Write `data` to `path` on a device reached through `remote` (an aiocoap remote, as a
    registration holds it) or `uri` ("coap://host:port"), block by block. With a
    `transfer` of an earlier push of the same data, continue where the device left off
    (its block size wins over `szx`); the transfer follows this push's progress."""
    if (remote is None) == (uri is None):
        raise ValueError("give exactly one of remote or uri")
    if not 0 <= szx <= MAX_SZX:
        raise ValueError(f"szx must be 0..{MAX_SZX}")
    if transfer is None or transfer.size != len(data):
        transfer = Transfer(len(data), szx)
    try:
        async with asyncio.timeout(timeout):
            await _send_blocks(context, data, _target(remote, uri, path), path, transfer)
    except TimeoutError:
        raise DeviceTimeout(f"{path}: push of {len(data)} bytes not done in {timeout}s") from None
    except coap_error.TimeoutError:
        raise DeviceTimeout(f"{path}: the device stopped answering during the push") from None
    except (coap_error.Error, OSError) as exc:
        raise TemporaryError(f"{path}: push failed: {type(exc).__name__}: {exc}") from exc
    finally:
        transfer.cut = None  # nothing to cut any more


def _target(remote: Any, uri: str | None, path: Path) -> dict[str, Any]:
    if uri is not None:
        return {"uri": uri.rstrip("/") + str(path)}
    return {"uri_path": tuple(str(s) for s in path.segments()), "remote": remote}


async def _send_blocks(
    context: Requester, data: bytes, target: dict[str, Any], path: Path, transfer: Transfer
) -> None:
    remote = target.pop("remote", None)
    resumed = transfer.offset > 0
    transfer.cut = asyncio.get_running_loop().create_future()
    while True:
        offset, szx, num = transfer.offset, transfer.szx, transfer.block
        chunk = data[offset : offset + (1 << (szx + 4))]
        more = offset + len(chunk) < len(data)
        message = Message(code=Code.PUT, payload=chunk, content_format=OPAQUE, **target)
        message.opt.block1 = (num, more, szx)
        if num == 0:
            message.opt.size1 = len(data)
        if remote is not None:
            message.remote = remote
        response = await _answer(context.request(message, handle_blockwise=False),
                                 transfer.cut)
        if resumed and response.code == Code.REQUEST_ENTITY_INCOMPLETE:
            # The device no longer holds the blocks it acknowledged (it restarted, or
            # let the partial transfer go): the whole package again, from block 0.
            log.info("%s: the device lost the partial push at block %d of %d (4.08); "
                     "starting again at block 0", path, num, transfer.blocks)
            resumed, transfer.offset = False, 0
            continue
        resumed = False
        if response.code == Code.REQUEST_ENTITY_INCOMPLETE and num > 0:
            raise TemporaryError(f"{path}: the device lost the partial push at block {num} "
                                 f"of {transfer.blocks} (4.08: it restarted?)")
        _check(response, path, more)
        if not more:
            transfer.offset = len(data)
            return
        transfer.szx = _next_szx(response, szx)
        transfer.offset = offset + len(chunk)
        if transfer.checkpoint is not None:
            wait = transfer.checkpoint(transfer)
            if wait is not None:  # its position's write: the push may not outrun it
                await _unless_cut(wait, transfer.cut)


async def _answer(request: Any, cut: asyncio.Future[FotaError]) -> Any:
    """The device's answer to one block, unless the push is cut first (then the request
    is abandoned: no more retransmissions to where no answer can come from)."""
    try:
        await asyncio.wait((request.response, cut), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        abandon(request)  # our deadline: asyncio.wait cancels neither future
        raise
    if not request.response.done():
        abandon(request)
        raise cut.result()
    return request.response.result()


async def _unless_cut(wait: asyncio.Future[None], cut: asyncio.Future[FotaError]) -> None:
    """Until `wait` is done; raises the cut's error if the push is cut first."""
    await asyncio.wait((wait, cut), return_when=asyncio.FIRST_COMPLETED)
    if not wait.done():
        raise cut.result()


def _check(response: Any, path: Path, more: bool) -> None:
    if not response.code.is_successful():
        diagnostic = response.payload.decode("utf-8", "replace")[:200]
        raise DeviceRequestFailed(str(path), response.code.dotted, diagnostic)
    # 2.31 Continue, or 2.04 with Block1 from a device that stores blocks as they come
    # (RFC 7959 §2.3); without Block1 the device ignored the option and took one block.
    if more and response.code != Code.CONTINUE and response.opt.block1 is None:
        raise DeviceRequestFailed(
            str(path), response.code.dotted, "answered without Block1 before the last block"
        )


def _next_szx(response: Any, szx: int) -> int:
    """A device may ask for smaller blocks in its 2.31 Continue; never grow them."""
    acknowledged = response.opt.block1
    if acknowledged is not None and acknowledged.size_exponent < szx:
        return int(acknowledged.size_exponent)
    return szx
