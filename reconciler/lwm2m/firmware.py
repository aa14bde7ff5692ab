"""Firmware delivery: offers of image bytes to devices, served block-wise (RFC 7959 Block2).

`FirmwareRepository.offer(endpoint, image_id, data)` files an image under `/fw/<token>`,
a path carrying an unguessable token (secrets.token_urlsafe), so only the device it was
offered to can fetch it; every other path answers 4.04. Authorisation is by token, never
by source address: devices often download from another port or socket.

An offer is a small record (token, endpoint, image id, expiry: `Offer`, or the model's
`FirmwareOffer` to persist); the bytes live once per image (`Image`, with the fast path's
encoded blocks), shared by every device offered that image and dropped when the last
offer of it ends, so memory grows with images, not devices. An offer ends when it is
revoked (the controller does so when the update ends in any way or the target changes),
replaced, or expired; `restore` files an offer an earlier run handed out under its old
token. Served by `FirmwareResource` (an aiocoap resource,
`repository.mount(site)`) and by the fast path in `fastpath.py`; both choose blocks with
the pure `select_block`. Called by `server.py`; `push.py` pushes instead.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiocoap import Message, resource
from aiocoap.numbers.codes import Code

from reconciler.lwm2m.remote_offers import RemoteOffers
from reconciler.model.lwm2m import FirmwareOffer

log = logging.getLogger(__name__)

MAX_SZX = 6  # 1024-byte blocks: the largest RFC 7959 allows over UDP
OPAQUE = 42
BAD_REQUEST, BAD_OPTION = "4.00", "4.02"
# An offer not revoked by then (the controller revokes when the update ends) stops serving:
# a safety net far longer than any download (1 MiB at one block a second: 17 minutes).
OFFER_LIFETIME = 86400.0


@dataclass(frozen=True, slots=True)
class Offer:
    """One image offered to one endpoint until `expires_at` (seconds since the epoch)."""

    token: str
    endpoint: str
    image_id: str
    expires_at: float
    prefix: str = "fw"

    @property
    def path(self) -> str:
        return f"/{self.prefix}/{self.token}"

    @property
    def record(self) -> FirmwareOffer:
        return FirmwareOffer(self.token, self.endpoint, self.image_id, self.expires_at)


class Image:
    """One image's bytes, shared by all its offers; `blocks` caches the fast path's encoded
    answers (options and payload, and the payload's length) by the request's Block2
    value without its M bit (num << 4 | szx), -1 for a request without Block2."""

    __slots__ = ("blocks", "data", "etag", "final", "image_id")

    def __init__(self, image_id: str, data: bytes) -> None:
        self.image_id = image_id
        self.data = data
        self.etag = etag_of(data)
        self.blocks: dict[int, tuple[bytes, int]] = {}
        # The keys of `blocks` whose answer ends the image (one per block size asked
        # for): serving one tells the repository's `on_final_block`.
        self.final: set[int] = set()


def etag_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:8]


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
    """Offers by token and by endpoint (one live offer per endpoint), images by id."""

    def __init__(self, *, prefix: str = "fw", max_szx: int = MAX_SZX,
                 lifetime: float = OFFER_LIFETIME,
                 clock: Callable[[], float] = time.time) -> None:
        if not 0 <= max_szx <= MAX_SZX:
            raise ValueError(f"max_szx must be 0..{MAX_SZX}")
        self.prefix = prefix
        self.max_szx = max_szx
        self._lifetime, self._clock = lifetime, clock
        self._by_token: dict[str, Offer] = {}
        self._by_endpoint: dict[str, Offer] = {}
        self._images: dict[str, Image] = {}
        self._users: dict[str, int] = {}  # image id -> live offers of it
        self._expired = 0  # offers `lookup` revoked for their age since `drop_expired`
        # /metrics reads these at scrape time (`Metrics.count_firmware`): two int
        # additions per block, where a hook per block cost more than the block itself.
        self.blocks_sent = 0
        self.bytes_sent = 0
        # Several nodes: offers another node handed out, looked up in the shared store
        # (remote_offers; set by `serve`, None on one node).
        self.remote: RemoteOffers | None = None
        # Told the endpoint whose offer's last block was just served (a download done:
        # `deliveries.py`); set by `Lwm2mServer`.
        self.on_final_block: Callable[[str], None] | None = None

    def final_block_sent(self, token: str) -> None:
        """The block that ends the image went out to the offer at `token`."""
        offer = self._by_token.get(token)
        if offer is not None and self.on_final_block is not None:
            self.on_final_block(offer.endpoint)

    def block_sent(self, payload_bytes: int) -> None:
        """Count one block sent with `payload_bytes` of the image (the aiocoap resource
        and the fast path call this once per block they send)."""
        self.blocks_sent += 1
        self.bytes_sent += payload_bytes

    def offer(self, endpoint: str, image_id: str, data: bytes) -> str:
        """File `data` for `endpoint` and return its path ("/fw/<token>"). Offering the same
        image again keeps the same offer (path and expiry), so a retried write of /5/0/1
        stays valid."""
        image = self._shared(image_id, data)
        current = self._by_endpoint.get(endpoint)
        if current is not None and current.image_id == image_id and \
                self._images.get(image_id) is image:
            return current.path
        offer = Offer(secrets.token_urlsafe(18), endpoint, image_id,
                      self._clock() + self._lifetime, self.prefix)
        self._add(offer, image)
        return offer.path

    def restore(self, record: FirmwareOffer, data: bytes) -> str:
        """File an offer an earlier run handed out, under its old token and expiry, so the
        URI the device holds keeps working (its download resumes at the block it asks
        for); returns its path."""
        offer = Offer(record.token, record.endpoint, record.image_id, record.expires_at,
                      self.prefix)
        self._add(offer, self._shared(record.image_id, data))
        return offer.path

    def revoke(self, endpoint: str) -> None:
        offer = self._by_endpoint.pop(endpoint, None)
        if offer is not None:
            self._by_token.pop(offer.token, None)
            self._release(offer.image_id)

    def lookup(self, token: str) -> Offer | None:
        """The live offer at `token` (an expired one is revoked here)."""
        offer = self._by_token.get(token)
        if offer is not None and offer.expires_at <= self._clock():
            self.revoke(offer.endpoint)
            self._expired += 1
            return None
        return offer

    def served(self, token: str) -> Image | None:
        """The image a live offer's token serves, or None (4.04)."""
        offer = self.lookup(token)
        return None if offer is None else self.image(offer.image_id)

    def image(self, image_id: str) -> Image | None:
        return self._images.get(image_id)

    def offered(self, endpoint: str) -> Offer | None:
        return self._by_endpoint.get(endpoint)

    def offers(self) -> list[Offer]:
        return list(self._by_token.values())

    def drop_expired(self, now: float) -> int:
        """Revoke every offer expired by `now`; returns how many expired since the last
        call (those `lookup` met first included)."""
        expired = [o.endpoint for o in self._by_token.values() if o.expires_at <= now]
        for endpoint in expired:
            self.revoke(endpoint)
        count, self._expired = len(expired) + self._expired, 0
        return count

    def images_held(self) -> int:
        return len(self._images)

    def __len__(self) -> int:
        return len(self._by_token)

    def _shared(self, image_id: str, data: bytes) -> Image:
        """The held image for `image_id`, or a new one (also for the same id with other
        bytes, which then replaces it for every offer of that id)."""
        image = self._images.get(image_id)
        if image is None or (image.data is not data and image.etag != etag_of(data)):
            image = Image(image_id, bytes(data))
        return image

    def _add(self, offer: Offer, image: Image) -> None:
        self.revoke(offer.endpoint)
        self._by_token[offer.token] = self._by_endpoint[offer.endpoint] = offer
        self._users[offer.image_id] = self._users.get(offer.image_id, 0) + 1
        self._images[offer.image_id] = image

    def _release(self, image_id: str) -> None:
        left = self._users.get(image_id, 0) - 1
        if left > 0:
            self._users[image_id] = left
        else:  # the last offer of this image ended: its bytes and blocks go
            self._users.pop(image_id, None)
            self._images.pop(image_id, None)

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
        image = self._repository.served(path[0]) if len(path) == 1 else None
        remote = self._repository.remote
        if image is None and remote is not None and len(path) == 1 \
                and await remote.fetch(path[0]):
            image = self._repository.served(path[0])  # another node's offer, filed now
        if image is None:
            return _error("4.04", "no firmware offered at this path")
        if request.opt.accept not in (None, OPAQUE):
            return _error("4.06", "firmware is served as application/octet-stream (42)")
        wanted = request.opt.block2
        block2 = None if wanted is None else (wanted.block_number, wanted.size_exponent)
        try:
            choice = select_block(len(image.data), block2, self._repository.max_szx)
        except BlockError as exc:
            return _error(exc.code, str(exc))
        response = Message(
            code=Code.CONTENT,
            payload=image.data[choice.start : choice.end],
            etag=image.etag,
            content_format=OPAQUE,
            size2=len(image.data),
        )
        if choice.blockwise:
            response.opt.block2 = (choice.num, choice.more, choice.szx)
        self._repository.block_sent(choice.end - choice.start)
        if not choice.more:
            self._repository.final_block_sent(path[0])
        return response


def _error(dotted: str, message: str) -> Any:
    klass, _, detail = dotted.partition(".")
    return Message(code=Code(int(klass) * 32 + int(detail)), payload=message.encode())
