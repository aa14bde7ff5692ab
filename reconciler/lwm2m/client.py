"""`DeviceClient`: LwM2M device management operations on one registered endpoint.

Read, Write (PUT replace / POST partial update), Execute, Observe (and cancel), Discover
and block-wise push of a firmware package. Requests leave from the server's own socket
to the address the device last registered from, wait for a queue-mode device's next
Register/Update when it sleeps, negotiate the content format (`formats.py`) and raise only
errors of `reconciler.errors`. Made by `Lwm2mServer.client`, which it sees only as a
`ServerSide`; used by the controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from aiocoap import Message
from aiocoap.numbers.codes import Code

from reconciler.errors import (
    DeviceMoved,
    DeviceNotRegistered,
    DeviceRequestFailed,
    DeviceTimeout,
    RequestQueued,
)
from reconciler.lwm2m.coaperrors import abandon, raise_for_code, translate
from reconciler.lwm2m.codecs import CodecError, Value, encode, parse_link_format
from reconciler.lwm2m.formats import (
    MULTI_VALUE,
    decode_response,
    links_under,
    read_formats,
    write_formats,
)
from reconciler.lwm2m.observe import Observation, follow
from reconciler.lwm2m.push import push_firmware
from reconciler.lwm2m.pushes import Pushes, detached
from reconciler.lwm2m.rd_table import Entry
from reconciler.model.lwm2m import FW_PACKAGE, Path, Registration

FALLBACK_CODES = ("4.06", "4.15")  # Not Acceptable (Accept), Unsupported Content-Format
RequestCounter = Callable[[str, str], None]  # (operation, outcome): /metrics' counter
_P = ParamSpec("_P")
_T = TypeVar("_T")
# What ended a request, as a metric label: a small fixed set
_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (DeviceTimeout, "timeout"), (DeviceRequestFailed, "failed"),
    (DeviceNotRegistered, "not_registered"), (RequestQueued, "asleep"),
    (DeviceMoved, "moved"),
    (asyncio.CancelledError, "cancelled"))


def _counted(operation: str) -> Callable[
        [Callable[Concatenate[DeviceClient, _P], Awaitable[_T]]],
        Callable[Concatenate[DeviceClient, _P], Awaitable[_T]]]:
    """Count each call of the operation by how it ended, when the server has a counter."""
    def wrap(method: Callable[Concatenate[DeviceClient, _P], Awaitable[_T]]
             ) -> Callable[Concatenate[DeviceClient, _P], Awaitable[_T]]:
        @functools.wraps(method)
        async def counted(client: DeviceClient, /, *args: _P.args, **kwargs: _P.kwargs
                          ) -> _T:
            try:
                result = await method(client, *args, **kwargs)
            except BaseException as exc:
                if client.count is not None:
                    client.count(operation, next((label for kind, label in _OUTCOMES
                                                  if isinstance(exc, kind)), "error"))
                raise
            if client.count is not None:
                client.count(operation, "ok")
            return result
        return counted
    return wrap


class ServerSide(Protocol):
    """What a device client needs of the server it speaks through (`Lwm2mServer`)."""

    def entry(self, endpoint: str) -> Entry | None:
        """The live registration and the remote it came from."""

    def awake(self, registration: Registration) -> bool:
        """Whether the device listens now (queue mode: inside its window)."""

    async def wait_awake(self, endpoint: str) -> None:
        """Until the device's next Register or Update (the caller bounds the wait)."""

    def heard(self, endpoint: str) -> None:
        """The device answered: a queue-mode device is awake for another window."""

    def request(self, message: Message, handle_blockwise: bool = True) -> Any:
        """Send from the server's socket; the aiocoap request (as `Context.request`)."""

    def keep(self, task: asyncio.Task[None]) -> None:
        """Keep a background task alive until it ends or the server stops."""

    def delivered(self, endpoint: str) -> None:
        """The device took the last block of a package we pushed (`deliveries.py`)."""

    @property
    def pushes(self) -> Pushes:
        """The pushes running and how far each came (`pushes.py`)."""

    def departure(self, endpoint: str, remote: object
                  ) -> contextlib.AbstractContextManager[asyncio.Future[None]]:
        """A future done once the device registers from elsewhere than `remote`
        (`departures.Departures.watch`): an answer to a request sent there cannot come."""

    def preferred_format(self, endpoint: str) -> tuple[int | None, ...]:
        """The content format the device's reads last accepted: () when none yet."""

    def remember_format(self, endpoint: str, fmt: int | None) -> None:
        """The device's reads accepted `fmt` (kept until it registers again)."""


class DeviceClient:
    def __init__(self, server: ServerSide, endpoint: str,
                 count: RequestCounter | None = None) -> None:
        self._server = server
        self.endpoint = endpoint
        self.count = count

    @_counted("read")
    async def read(self, path: Path, *, timeout: float = 30.0) -> dict[Path, Value]:
        response = await self._negotiated(path, timeout, functools.partial(_get, path))
        return decode_response(path, response)

    @_counted("write")
    async def write(
        self, path: Path, value: Value | Mapping[Path, Value], *,
        partial: bool = False, timeout: float = 30.0,
    ) -> None:
        """PUT replaces (`partial=False`), POST updates only the given resources."""
        values: Mapping[Path, Value] = value if isinstance(value, Mapping) else {path: value}
        code = Code.POST if partial else Code.PUT
        entry = self._entry(path)
        known = (*self._server.preferred_format(self.endpoint), entry.root_content_format)
        formats = write_formats(entry.registration.lwm2m_version, path, values, known)

        def build(fmt: int | None) -> Message:
            payload = encode(fmt or 0, path, values)
            return Message(code=code, uri_path=_segments(path), payload=payload,
                           content_format=fmt)

        await self._negotiated(path, timeout, build, formats=formats)

    @_counted("execute")
    async def execute(self, path: Path, args: str | None = None, *,
                      timeout: float = 30.0) -> None:
        payload = (args or "").encode("utf-8")
        await self._exchange(path, timeout, lambda: Message(
            code=Code.POST, uri_path=_segments(path), payload=payload))

    @_counted("discover")
    async def discover(self, path: Path, *, timeout: float = 30.0) -> list[str]:
        """Link targets at and below `path`; for a device without Discover (5.01, 4.05)
        the object links it registered with."""
        try:
            response = await self._exchange(path, timeout, lambda: _get(path, 40))
        except DeviceRequestFailed as exc:
            if exc.code not in ("5.01", "4.05"):
                raise
            return links_under(self._entry(path).registration.object_links, path)
        try:
            links = parse_link_format(response.payload.decode("utf-8"))
        except (UnicodeDecodeError, CodecError) as exc:
            raise DeviceRequestFailed(str(path), response.code.dotted,
                                      f"malformed link-format: {exc}") from None
        return [link.target for link in links]

    @_counted("observe")
    async def observe(
        self, path: Path, on_notify: Callable[[dict[Path, Value]], None], *,
        timeout: float = 30.0,
    ) -> Observation:
        """Observe `path`; `on_notify` gets the first value and then every notification.
        A device that answers without Observe gives an inactive Observation."""

        def build(fmt: int | None) -> Message:
            message = _get(path, fmt)
            message.opt.observe = 0
            return message

        response, request = await self._negotiated(path, timeout, build, keep=True)
        first = decode_response(path, response)
        on_notify(first)
        if response.opt.observe is None:
            return Observation(path, request, None, first)
        task = asyncio.create_task(follow(request, path, on_notify, self._server.heard,
                                          self.endpoint), name=f"observe {self.endpoint}{path}")
        self._server.keep(task)
        return Observation(path, request, task, first)

    async def push_firmware(self, data: bytes, *, timeout: float, package: str = "",
                            resume: bool = False, digest: str = "") -> None:
        """Write the package to /5/0/0 block-wise (Block1, opaque); a sleeping queue-mode
        device is waited for first, within the same `timeout`. With `resume`, continue
        after the last block the device acknowledged in an interrupted push of the same
        `package` with the same sha256 `digest` (`pushes.py` records how a push
        stopped, and how far it came for a restart)."""
        await self._push(data, asyncio.get_running_loop().time() + timeout, package, resume,
                         digest, reserved=False)

    def start_push(self, data: bytes, *, timeout: float, package: str = "",
                   resume: bool = False, digest: str = "") -> None:
        """`push_firmware` as an operation of the server's (`pushes.detached`): reserved
        now, sent from its own task once one of the server's push slots is free, and
        returns at once. How it ends is observed state (a delivery or a `PushStop`);
        TemporaryError now when a push to this device is still running."""
        pushes = self._server.pushes
        pushes.reserve(self.endpoint)
        deadline = asyncio.get_running_loop().time() + timeout
        task = asyncio.create_task(detached(pushes, self.endpoint, functools.partial(
            self._push, data, deadline, package, resume, digest, reserved=True)),
            name=f"push {self.endpoint}")
        self._server.keep(task)

    @_counted("push")
    async def _push(self, data: bytes, deadline: float, package: str, resume: bool,
                    digest: str, *, reserved: bool) -> None:
        loop = asyncio.get_running_loop()
        with self._server.pushes.pushing(self.endpoint, package, len(data), resume=resume,
                                         reserved=reserved, digest=digest) as transfer:
            # inside: a device that leaves while the push waits for it (asleep, or for a
            # slot) leaves a stop to resume from when it comes back, not a push that
            # never started and is polled until the deadline
            entry = await self._awake_entry(FW_PACKAGE, deadline - loop.time())
            await push_firmware(self._server, data, timeout=deadline - loop.time(),
                                remote=entry.remote, transfer=transfer)
        self._server.heard(self.endpoint)
        self._server.delivered(self.endpoint)

    # -- shared by the operations ---------------------------------------------------------

    def _entry(self, path: Path) -> Entry:
        entry = self._server.entry(self.endpoint)
        if entry is None:
            raise DeviceNotRegistered(f"{self.endpoint}: not registered (request {path})")
        return entry

    async def _negotiated(
        self, path: Path, timeout: float, build: Callable[[int | None], Message],
        formats: tuple[int | None, ...] | None = None, *, keep: bool = False,
    ) -> Any:
        """Try each content format in turn while the device answers 4.06 / 4.15; reads
        start with the format this device accepted last time. With `keep`, returns the
        response and the aiocoap request (for observations)."""
        remember = formats is None
        if formats is None:
            entry = self._entry(path)
            formats = read_formats(entry.registration.lwm2m_version, entry.root_content_format)
            known = self._server.preferred_format(self.endpoint)
            formats = (*(f for f in formats if f in known), *(f for f in formats if f not in known))
        deadline = asyncio.get_running_loop().time() + timeout
        for index, fmt in enumerate(formats):
            loop = asyncio.get_running_loop()
            try:
                request, remote = await self._send(path, deadline - loop.time(),
                                                   functools.partial(build, fmt))
                response = await self._answer(path, request, remote, deadline - loop.time())
            except DeviceRequestFailed as exc:
                if exc.code in FALLBACK_CODES and index + 1 < len(formats):
                    continue
                raise
            if remember or (fmt in MULTI_VALUE and index > 0):
                # a write that had to step down also tells what the device speaks
                self._server.remember_format(self.endpoint, fmt)
            return (response, request) if keep else response
        raise AssertionError("unreachable: the format list is never empty")

    async def _exchange(self, path: Path, timeout: float, build: Callable[[], Message]
                        ) -> Message:
        deadline = asyncio.get_running_loop().time() + timeout
        request, remote = await self._send(path, timeout, build)
        return await self._answer(path, request, remote,
                                  deadline - asyncio.get_running_loop().time())

    async def _send(self, path: Path, timeout: float, build: Callable[[], Message]
                    ) -> tuple[Any, object]:
        """Send once the device is reachable; returns the aiocoap request and the remote
        it went to."""
        entry = await self._awake_entry(path, timeout)
        message = build()
        message.remote = entry.remote
        return self._server.request(message), entry.remote

    async def _answer(self, path: Path, request: Any, remote: object, timeout: float
                      ) -> Message:
        """The answer to `request`, sent to `remote`, within `timeout`; DeviceMoved as
        soon as the device registers from another address (no answer can come then)."""
        try:
            async with asyncio.timeout(max(timeout, 0.001)):
                with self._server.departure(self.endpoint, remote) as departed:
                    # asyncio.wait never cancels what it waits for: our deadline must not
                    # cancel aiocoap's response future itself. After a stalled loop, the
                    # answer and the deadline fall in one pass, the request's runner is
                    # woken first and sets the future our timer had cancelled
                    # (InvalidStateError, logged by aiocoap with a traceback); `abandon`
                    # ends the runner before the future.
                    await asyncio.wait((request.response, departed),
                                       return_when=asyncio.FIRST_COMPLETED)
                    if not request.response.done():
                        raise DeviceMoved(f"{self.endpoint} {path}: the device registered "
                                          f"again from another address; no answer can "
                                          f"come to the old one")
                    response: Message = request.response.result()
        except BaseException as exc:
            abandon(request)
            if not isinstance(exc, Exception) or isinstance(exc, DeviceMoved):
                raise  # cancelled (the request ends with us), or ours already
            raise translate(exc, f"{self.endpoint} {path}") from None
        self._server.heard(self.endpoint)
        raise_for_code(response, str(path), self.endpoint)
        return response

    async def _awake_entry(self, path: Path, timeout: float) -> Entry:
        """The registration, once the device is awake (queue mode: after its next
        Register/Update). `RequestQueued` when it did not wake up within `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                return await self._reachable(path)
        except TimeoutError:
            raise RequestQueued(f"{self.endpoint}: asleep, {path} not sent in time") from None

    async def _reachable(self, path: Path) -> Entry:
        entry = self._entry(path)
        while not self._server.awake(entry.registration):
            await self._server.wait_awake(self.endpoint)
            entry = self._entry(path)
        return entry


def _segments(path: Path) -> tuple[str, ...]:
    return tuple(str(s) for s in path.segments())


def _get(path: Path, accept: int | None) -> Message:
    message = Message(code=Code.GET, uri_path=_segments(path))
    if accept is not None:
        message.opt.accept = accept
    return message
