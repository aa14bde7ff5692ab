"""Firmware delivery: per-device offers of image bytes, served block-wise (RFC 7959 Block2).

`FirmwareRepository.offer(endpoint, image_id, data)` files an image under `/fw/<token>`,
a path carrying an unguessable token (secrets.token_urlsafe), so only the device it was
offered to can fetch it; every other path answers 4.04. Authorisation is by token, never
by source address: devices often download from another port or socket. The repository
is served by `FirmwareResource` (an aiocoap resource, `repository.mount(site)`) and by the
fast path in `fastpath.py`; both choose blocks with the pure `select_block`. Called by
`server.py` (offer_firmware / revoke_firmware); `push.py` pushes instead.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiocoap import Message, resource
from aiocoap.numbers.codes import Code

MAX_SZX = 6  # 1024-byte blocks: the largest RFC 7959 allows over UDP
OPAQUE = 42
BAD_REQUEST, BAD_OPTION = "4.00", "4.02"


@dataclass(frozen=True, slots=True, eq=False)
class Offer:
    """One image offered to one endpoint; `blocks` caches the fast path's encoded answers
    by the request's Block2 (num, szx), None for a request without Block2."""

    token: str
    endpoint: str
    image_id: str
    data: bytes
    etag: bytes
    prefix: str = "fw"
    blocks: dict[tuple[int, int] | None, bytes] = field(default_factory=dict, repr=False)

    @property
    def path(self) -> str:
        return f"/{self.prefix}/{self.token}"


@dataclass(frozen=True, slots=True)
class BlockChoice:
    """Which bytes answer a GET: data[start:end], with Block2 (num, more, szx) when
    `blockwise`, or the whole image without Block2 when it fits one block."""

    num: int
    szx: int
    start: int
    end: int
    more: bool
    blockwise: bool


class BlockError(Exception):
    """A Block2 request that cannot be served; `code` is the dotted CoAP code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_block_value(value: int) -> tuple[int, bool, int]:
    """A Block1/Block2 option uint -> (num, more, szx) (RFC 7959 §2.2)."""
    return value >> 4, bool(value & 0x08), value & 0x07


def block_value(num: int, more: bool, szx: int) -> int:
    return num << 4 | (0x08 if more else 0) | szx


def select_block(size: int, block2: tuple[int, int] | None, max_szx: int = MAX_SZX) -> BlockChoice:
    """The block of a `size`-byte image for a request's Block2 (num, szx), or for a request
    without Block2 (the whole image if it fits one block of max_szx, else block 0)."""
    if block2 is None:
        block_size = 1 << (max_szx + 4)
        if size <= block_size:
            return BlockChoice(0, max_szx, 0, size, False, False)
        return BlockChoice(0, max_szx, 0, block_size, True, True)
    num, szx = block2
    if szx == 7:
        raise BlockError(BAD_REQUEST, "Block2 SZX 7 is reserved (BERT needs a reliable transport)")
    if szx > max_szx:  # the client may ask for bigger blocks than we send: scale down
        num, szx = num << (szx - max_szx), max_szx
    block_size = 1 << (szx + 4)
    start = num * block_size
    if start >= size and start > 0:
        raise BlockError(
            BAD_OPTION,
            f"Block2 block {num} of {block_size} bytes starts past the {size}-byte image",
        )
    end = min(start + block_size, size)
    return BlockChoice(num, szx, start, end, end < size, True)


class FirmwareRepository:
    """Offers by token and by endpoint; one live offer per endpoint."""

    def __init__(self, *, prefix: str = "fw", max_szx: int = MAX_SZX) -> None:
        if not 0 <= max_szx <= MAX_SZX:
            raise ValueError(f"max_szx must be 0..{MAX_SZX}")
        self.prefix = prefix
        self.max_szx = max_szx
        self._by_token: dict[str, Offer] = {}
        self._by_endpoint: dict[str, Offer] = {}

    def offer(self, endpoint: str, image_id: str, data: bytes) -> str:
        """File `data` for `endpoint` and return its path ("/fw/<token>"). Offering the same
        image again keeps the same path, so a retried write of /5/0/1 stays valid."""
        etag = hashlib.sha256(data).digest()[:8]
        current = self._by_endpoint.get(endpoint)
        if current is not None and current.image_id == image_id and current.etag == etag:
            return current.path
        return self._file(secrets.token_urlsafe(18), endpoint, image_id, data, etag)

    def restore(self, token: str, endpoint: str, image_id: str, data: bytes) -> str:
        """File an offer an earlier run of the server handed out, under its old token, so
        the URI the device holds keeps working (and its download resumes at the block it
        asks for); returns its path."""
        return self._file(token, endpoint, image_id, data, hashlib.sha256(data).digest()[:8])

    def _file(self, token: str, endpoint: str, image_id: str, data: bytes,
              etag: bytes) -> str:
        self.revoke(endpoint)
        offer = Offer(token, endpoint, image_id, bytes(data), etag, self.prefix)
        self._by_token[token] = offer
        self._by_endpoint[endpoint] = offer
        return offer.path

    def revoke(self, endpoint: str) -> None:
        offer = self._by_endpoint.pop(endpoint, None)
        if offer is not None:
            self._by_token.pop(offer.token, None)

    def lookup(self, token: str) -> Offer | None:
        return self._by_token.get(token)

    def offered(self, endpoint: str) -> Offer | None:
        return self._by_endpoint.get(endpoint)

    def __len__(self) -> int:
        return len(self._by_token)

    def mount(self, site: Any) -> None:
        """Serve the repository from an aiocoap `Site` at /<prefix>/<token>."""
        site.add_resource((self.prefix,), FirmwareResource(self))


class FirmwareResource(resource.Resource, resource.PathCapable):  # type: ignore[misc]
    """aiocoap resource for /fw/<token>; does its own Block2 (ETag, Size2, client SZX)."""

    def __init__(self, repository: FirmwareRepository) -> None:
        super().__init__()
        self._repository = repository

    async def needs_blockwise_assembly(self, request: Any) -> bool:
        return False  # we cut blocks ourselves, with ETag and Size2

    def get_link_description(self) -> None:
        return None  # never list offers in /.well-known/core: the tokens are the secret

    async def render_get(self, request: Any) -> Any:
        path = request.opt.uri_path
        offer = self._repository.lookup(path[0]) if len(path) == 1 else None
        if offer is None:
            return _error("4.04", "no firmware offered at this path")
        if request.opt.accept not in (None, OPAQUE):
            return _error("4.06", "firmware is served as application/octet-stream (42)")
        wanted = request.opt.block2
        block2 = None if wanted is None else (wanted.block_number, wanted.size_exponent)
        try:
            choice = select_block(len(offer.data), block2, self._repository.max_szx)
        except BlockError as exc:
            return _error(exc.code, str(exc))
        response = Message(
            code=Code.CONTENT,
            payload=offer.data[choice.start : choice.end],
            etag=offer.etag,
            content_format=OPAQUE,
            size2=len(offer.data),
        )
        if choice.blockwise:
            response.opt.block2 = (choice.num, choice.more, choice.szx)
        return response


def _error(dotted: str, message: str) -> Any:
    klass, _, detail = dotted.partition(".")
    return Message(code=Code(int(klass) * 32 + int(detail)), payload=message.encode())
