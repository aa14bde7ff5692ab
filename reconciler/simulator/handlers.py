"""The LwM2M device management interface of a simulated client: request -> response.

Maps CoAP methods to LwM2M operations as the core spec's mapping table does: GET is Read
(Observe 0/1 starts or cancels an observation; Accept 40 is Discover), PUT is Write
(replace) or, with a query and no payload, Write-Attributes, POST on an instance is a
partial Write and on a resource Execute; Create and Delete are refused (4.05) since
Objects 3 and 5 are single-instance. Error codes follow the spec: 4.04 unknown target,
4.05 operation not allowed there (or not in this state), 4.06 unsupported Accept, 4.15
unsupported Content-Format, 4.00 undecodable payload. Called by `device` per request;
sees the device only as a `ManagedDevice`.
"""

from __future__ import annotations

from typing import Protocol

from aiocoap import CHANGED, CONTENT, GET, POST, PUT, Code, Message

from reconciler.lwm2m.codecs import CodecError, ContentFormat, Value, decode, encode
from reconciler.model.lwm2m import FirmwareState, Path
from reconciler.simulator import objects
from reconciler.simulator.coap import Addr
from reconciler.simulator.observe import Observers
from reconciler.simulator.spec import DeviceSpec
from reconciler.simulator.updater import FirmwareUpdater


class ManagedDevice(Protocol):
    """What the device management interface acts on (`SimDevice`)."""

    spec: DeviceSpec
    attributes: dict[Path, str]  # Write-Attributes, shown by Discover
    observers: Observers
    updater: FirmwareUpdater  # Object 5: package writes and Execute /5/0/2

    @property
    def state(self) -> FirmwareState: ...
    def read_values(self) -> dict[Path, Value]: ...
    def reboot_now(self) -> None: ...  # Execute /3/0/4
    def trigger_update(self) -> None: ...  # Execute /1/0/8

_ATTRIBUTES = frozenset({"pmin", "pmax", "gt", "lt", "st", "epmin", "epmax"})
_MAX_PAYLOAD = 1024  # larger answers go block-wise (Block2)


def error(code: Code, diagnostic: str = "") -> Message:
    return Message(code=code, payload=diagnostic.encode())


def handle(dev: ManagedDevice, msg: Message, remote: Addr) -> Message | None:
    try:
        path = Path.parse("/".join(msg.opt.uri_path))
    except ValueError:
        return error(Code.NOT_FOUND, "not an LwM2M path")
    if not objects.exists(path):
        return error(Code.NOT_FOUND, f"{path} does not exist")
    if msg.code == GET:
        accept = msg.opt.accept
        if accept is not None and int(accept) == ContentFormat.LINK_FORMAT:
            return _discover(dev, path)
        return _read(dev, msg, path, remote)
    if msg.code == PUT:
        if not msg.payload and msg.opt.uri_query and msg.opt.block1 is None:
            return _write_attributes(dev, path, msg.opt.uri_query)
        return _write(dev, msg, path)
    if msg.code == POST and path.resource is not None:
        return _execute(dev, path)
    if msg.code == POST and path.instance is not None:
        return _write(dev, msg, path)
    return error(Code.METHOD_NOT_ALLOWED, f"{msg.code} is not allowed on {path}")


def describe(msg: Message) -> str:
    """A request as counted (`SimDevice.requests`): method and path, and whether it
    starts an Observe ("GET /5/0 observe")."""
    text = f"{msg.code.name} /{'/'.join(msg.opt.uri_path)}"
    return text + " observe" if msg.code == GET and msg.opt.observe == 0 else text


def render(dev: ManagedDevice, path: Path, fmt: int) -> bytes | None:
    """The encoded value(s) at `path`, or None when there is nothing to encode."""
    values = objects.select(dev.read_values(), path)
    if not values:
        return None
    try:
        return encode(fmt, path, values)
    except CodecError:
        return None


def _read(dev: ManagedDevice, msg: Message, path: Path, remote: Addr) -> Message:
    definition = objects.resource_def(path)
    if definition is not None and "R" not in definition.ops:
        return error(Code.METHOD_NOT_ALLOWED, f"{path} is not readable")
    accept = msg.opt.accept
    fmt = objects.negotiate(None if accept is None else int(accept), path,
                            dev.spec.lwm2m_version)
    if fmt is None:
        return error(Code.NOT_ACCEPTABLE, f"cannot answer {path} in format {accept}")
    payload = render(dev, path, fmt)
    if payload is None:
        return error(Code.INTERNAL_SERVER_ERROR, f"cannot encode {path}")
    response = Message(code=CONTENT, content_format=fmt)
    observe = msg.opt.observe
    if observe == 0:
        response.opt.observe = dev.observers.add(msg.token, path, fmt, remote, payload)
    elif observe == 1:
        dev.observers.cancel(msg.token)
    return _blockwise(response, payload, msg)


def _blockwise(response: Message, payload: bytes, request: Message) -> Message:
    wanted = request.opt.block2
    if wanted is None and len(payload) <= _MAX_PAYLOAD:
        response.payload = payload
        return response
    num, szx = (wanted.block_number, min(wanted.size_exponent, 6)) if wanted else (0, 6)
    size = 1 << (szx + 4)
    if num * size >= len(payload) > 0:
        return error(Code.BAD_OPTION, "block number beyond the end")
    response.payload = payload[num * size:(num + 1) * size]
    response.opt.block2 = (num, (num + 1) * size < len(payload), szx)
    response.opt.size2 = len(payload)
    return response


def _discover(dev: ManagedDevice, path: Path) -> Message:
    links = objects.discover(path, dev.attributes)
    return Message(code=CONTENT, content_format=int(ContentFormat.LINK_FORMAT),
                   payload=links.encode())


def _write(dev: ManagedDevice, msg: Message, path: Path) -> Message | None:
    if path.instance is None:
        return error(Code.METHOD_NOT_ALLOWED, "Write on an Object is not allowed")
    if path == Path(5, 0, 0) and (msg.opt.block1 is not None
                                  or msg.opt.content_format == ContentFormat.OPAQUE):
        return _write_package(dev, msg)
    fmt = msg.opt.content_format
    if fmt is None:
        return error(Code.BAD_REQUEST, "a Write needs a Content-Format")
    if int(fmt) not in objects.formats_for(dev.spec.lwm2m_version):
        return error(Code.UNSUPPORTED_CONTENT_FORMAT, f"format {int(fmt)} not supported")
    try:
        values = decode(int(fmt), path, msg.payload)
    except CodecError as exc:
        return error(Code.BAD_REQUEST, str(exc))
    return _apply(dev, values)


def _apply(dev: ManagedDevice, values: dict[Path, Value]) -> Message | None:
    for target in values:
        definition = objects.resource_def(target)
        if not objects.exists(target) or definition is None or "W" not in definition.ops:
            return error(Code.METHOD_NOT_ALLOWED, f"{target} is not writable")
    code: Code | None = CHANGED
    for target, value in values.items():
        if target.resource == 1:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            code = dev.updater.write_package_uri(text)
        else:
            code = dev.updater.write_package(None, value if isinstance(value, bytes) else b"")
    return None if code is None else Message(code=code)


def _write_package(dev: ManagedDevice, msg: Message) -> Message | None:
    block = msg.opt.block1
    parts = (block.block_number, block.more, block.size_exponent) if block else None
    code = dev.updater.write_package(parts, msg.payload)
    if code is None:
        return None  # a simulated lost link: the block is never answered
    response = Message(code=code)
    if block is not None and code in (Code.CONTINUE, CHANGED):
        response.opt.block1 = (block.block_number, code == Code.CONTINUE, block.size_exponent)
    return response


def _execute(dev: ManagedDevice, path: Path) -> Message:
    definition = objects.resource_def(path)
    if definition is None or "E" not in definition.ops or path.resource_instance is not None:
        return error(Code.METHOD_NOT_ALLOWED, f"{path} is not executable")
    if path == Path(5, 0, 2):
        code = dev.updater.execute_update()
        if code != CHANGED:
            return error(code, f"Update needs state Downloaded, not {dev.state.name}")
        return Message(code=code)
    if path == Path(3, 0, 4):
        dev.reboot_now()
    else:  # /1/0/8 Registration Update Trigger
        dev.trigger_update()
    return Message(code=CHANGED)


def _write_attributes(dev: ManagedDevice, path: Path, query: tuple[str, ...]) -> Message:
    for item in query:
        name = item.partition("=")[0]
        if name not in _ATTRIBUTES:
            return error(Code.BAD_REQUEST, f"unknown attribute {name!r}")
    dev.attributes[path] = ";".join(query)
    return Message(code=CHANGED)

