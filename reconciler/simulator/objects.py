"""The objects a simulated device exposes (1 Server, 3 Device, 5 Firmware Update), pure.

Owns the resource table (operations, multiple-instance), the snapshot of current values,
selecting the values under a request path, content-format negotiation per LwM2M version
and Discover's link format. `handlers` calls these to answer requests; nothing here does
I/O. Formats follow the LwM2M 1.0/1.1/1.2 core specs: TLV everywhere, plain text only for
a single-instance resource, opaque only for opaque resources, SenML JSON/CBOR from 1.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.lwm2m.codecs import ContentFormat, Value
from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, Path, UpdateResult


@dataclass(frozen=True, slots=True)
class ResourceDef:
    ops: str  # any of "R", "W", "E"
    multiple: bool = False
    opaque: bool = False


# (object, resource) -> definition: what this simulated client implements.
RESOURCES: dict[tuple[int, int], ResourceDef] = {
    (1, 0): ResourceDef("R"), (1, 1): ResourceDef("R"), (1, 6): ResourceDef("R"),
    (1, 7): ResourceDef("R"), (1, 8): ResourceDef("E"),
    (3, 0): ResourceDef("R"), (3, 1): ResourceDef("R"), (3, 2): ResourceDef("R"),
    (3, 3): ResourceDef("R"), (3, 4): ResourceDef("E"), (3, 6): ResourceDef("R", True),
    (3, 9): ResourceDef("R"), (3, 10): ResourceDef("R"), (3, 11): ResourceDef("R", True),
    (3, 13): ResourceDef("R"), (3, 16): ResourceDef("R"), (3, 17): ResourceDef("R"),
    (3, 18): ResourceDef("R"), (3, 19): ResourceDef("R"), (3, 21): ResourceDef("R"),
    (5, 0): ResourceDef("W", opaque=True), (5, 1): ResourceDef("RW"), (5, 2): ResourceDef("E"),
    (5, 3): ResourceDef("R"), (5, 5): ResourceDef("R"), (5, 6): ResourceDef("R"),
    (5, 7): ResourceDef("R"), (5, 8): ResourceDef("R", True), (5, 9): ResourceDef("R"),
}
OBJECTS = (1, 3, 5)
FORMATS_1_0 = frozenset({ContentFormat.TEXT, ContentFormat.OPAQUE, ContentFormat.TLV})
FORMATS_1_1 = FORMATS_1_0 | {ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR}


@dataclass(slots=True)
class FirmwareObject:
    """Object 5 instance 0, mutable: the device's update state machine writes it."""

    state: FirmwareState = FirmwareState.IDLE
    result: UpdateResult = UpdateResult.INITIAL
    package_uri: str = ""
    pkg_name: str = ""
    pkg_version: str = ""
    delivery: DeliveryMethod = DeliveryMethod.PULL_ONLY
    protocols: tuple[int, ...] = (0,)  # 0 = CoAP (RFC 7252)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Object 3 and 1 values that change only by reboot or registration."""

    manufacturer: str = "fota-gitops"
    model: str = "sim-1"
    serial: str = ""
    firmware_version: str = "1.0.0"
    hardware_version: str = "rev-a"
    lifetime: int = 300
    binding: str = "U"
    extra: Mapping[Path, Value] = field(default_factory=dict)


def snapshot(info: DeviceInfo, fw: FirmwareObject, now: int) -> dict[Path, Value]:
    """Every readable value of the device, keyed by full path."""
    values: dict[Path, Value] = {
        Path(1, 0, 0): 1, Path(1, 0, 1): info.lifetime, Path(1, 0, 6): False,
        Path(1, 0, 7): info.binding,
        Path(3, 0, 0): info.manufacturer, Path(3, 0, 1): info.model,
        Path(3, 0, 2): info.serial, Path(3, 0, 3): info.firmware_version,
        Path(3, 0, 6, 0): 1, Path(3, 0, 9): 100, Path(3, 0, 10): 512,
        Path(3, 0, 11, 0): 0, Path(3, 0, 13): now, Path(3, 0, 16): info.binding,
        Path(3, 0, 17): "simulator", Path(3, 0, 18): info.hardware_version,
        Path(3, 0, 19): info.firmware_version, Path(3, 0, 21): 1024,
        Path(5, 0, 1): fw.package_uri, Path(5, 0, 3): int(fw.state),
        Path(5, 0, 5): int(fw.result), Path(5, 0, 6): fw.pkg_name,
        Path(5, 0, 7): fw.pkg_version, Path(5, 0, 9): int(fw.delivery),
    }
    for i, proto in enumerate(fw.protocols):
        values[Path(5, 0, 8, i)] = proto
    values.update(info.extra)
    return values


def resource_def(path: Path) -> ResourceDef | None:
    if path.resource is None:
        return None
    return RESOURCES.get((path.object_id, path.resource))


def exists(path: Path) -> bool:
    """Does the device have this object, instance or resource?"""
    if path.object_id not in OBJECTS:
        return False
    if path.instance is not None and path.instance != 0:
        return False
    if path.resource is None:
        return True
    definition = resource_def(path)
    if definition is None:
        return False
    return path.resource_instance is None or definition.multiple


def select(values: Mapping[Path, Value], path: Path) -> dict[Path, Value]:
    """The readable values at or below `path`."""
    prefix = path.segments()
    return {p: v for p, v in values.items() if p.segments()[: len(prefix)] == prefix}


def formats_for(version: str) -> frozenset[int]:
    return FORMATS_1_0 if version == "1.0" else FORMATS_1_1


def negotiate(accept: int | None, path: Path, version: str) -> int | None:
    """The content format to answer a Read of `path` in, or None for 4.06."""
    definition = resource_def(path)
    single = definition is not None and (
        path.resource_instance is not None or not definition.multiple)
    if accept is None:
        if single:
            return int(ContentFormat.OPAQUE if definition and definition.opaque
                       else ContentFormat.TEXT)
        return int(ContentFormat.SENML_CBOR if version == "1.2" else ContentFormat.TLV)
    if accept not in formats_for(version):
        return None
    if accept == ContentFormat.TEXT and not single:
        return None
    if accept == ContentFormat.OPAQUE and not (single and definition and definition.opaque):
        return None
    return accept


def register_links(version: str) -> str:
    """The Register payload: root link with the preferred format, then the instances."""
    root = f'</>;rt="oma.lwm2m";ct={int(ContentFormat.TLV)}'
    if version == "1.2":  # 1.2 lists every supported format, most preferred first
        root = '</>;rt="oma.lwm2m";ct="112 110 11542"'
    return ",".join([root, "</1/0>", "</3/0>", "</5/0>"])


def discover(path: Path, attributes: Mapping[Path, str]) -> str:
    """Discover's link format: the target, then its resources (with dim for multiples)."""
    links = [_link(path, attributes)]
    if path.resource is None:
        for (obj, res), definition in sorted(RESOURCES.items()):
            if obj != path.object_id:
                continue
            child = Path(obj, 0, res)
            dim = ";dim=1" if definition.multiple else ""
            if path.instance is None and res == min(r for o, r in RESOURCES if o == obj):
                links.append(_link(Path(obj, 0), attributes))
            links.append(_link(child, attributes) + dim)
    return ",".join(links)


def _link(path: Path, attributes: Mapping[Path, str]) -> str:
    extra = attributes.get(path)
    return f"<{path}>" + (f";{extra}" if extra else "")
