"""Device rows -> `Device` values, with the rules that need the collection's images, and
the fleet-wide uniqueness of device ids and endpoint names.

`build_devices` resolves each target (a version of the collection, or one of its image
ids) and is memoised per (blob, collection, images) by `reconciler.sources.assemble`, so
a commit that leaves a device file and its collection's images alone costs no work here.
`duplicate_devices` runs a full scan only when the cheap size checks say it must.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from reconciler.model.desired import Device, SecurityMode
from reconciler.sources.devicelist import DeviceRows
from reconciler.sources.problems import Problem, located

_NO_TAGS: Mapping[str, str] = MappingProxyType({})
_SECURITY = {mode.value: mode for mode in SecurityMode}


@dataclass(frozen=True)
class Targets:
    """What a target may name in one collection."""

    collection_id: str
    versions: Mapping[str, str]  # version -> image id
    image_ids: frozenset[str]
    foreign: Mapping[str, str]  # image id -> collection id, for every other collection
    broken: frozenset[str] = frozenset()  # names of invalid images: already reported

    def resolve(self, target: str) -> str | None:
        found = self.versions.get(target)
        if found is None and target in self.image_ids:
            return target
        return found

    def problem(self, target: str) -> str:
        owner = self.foreign.get(target)
        if owner is not None:
            return f"image {target} belongs to collection {owner}, not {self.collection_id}"
        return f"no image of collection {self.collection_id} has version or id {target!r}"


@dataclass
class BuiltDevices:
    path: str
    rows: DeviceRows
    devices: dict[str, Device]
    problems: list[Problem] = field(default_factory=list)


def build_devices(path: str, rows: DeviceRows, targets: Targets) -> BuiltDevices:
    problems = located(path, rows.problems)
    devices: dict[str, Device] = {}
    cid = targets.collection_id
    tags = rows.tags
    for row, (device_id, endpoint, target) in enumerate(
        zip(rows.ids, rows.endpoints, rows.targets, strict=True)
    ):
        target_id = None
        if target is not None:
            target_id = targets.resolve(target)
            if target_id is None and target not in targets.broken:
                field_path = f"devices[{rows.positions[row]}].target"
                line = rows.line_of(row, "target")
                problems.append(Problem(path, line, field_path, targets.problem(target)))
        own = tags.get(row)
        # Read-only views: the dicts belong to the parse cache, shared across revisions.
        view = MappingProxyType(own) if own else _NO_TAGS
        devices[device_id] = Device(device_id, cid, endpoint, target_id, view,
                                    rows.retries.get(row, 0),
                                    _SECURITY.get(rows.security.get(row, "")))
    return BuiltDevices(path, rows, devices, problems)


def merge_devices(built: list[BuiltDevices]) -> tuple[dict[str, Device], list[Problem]]:
    """All devices by id; duplicates of ids or endpoints become problems."""
    merged: dict[str, Device] = {}
    total = 0
    for part in built:
        merged.update(part.devices)
        total += len(part.rows.ids)
    endpoints = {device.endpoint for device in merged.values()}
    if len(merged) == total and len(endpoints) == total:
        return merged, []
    return merged, duplicate_devices(built)


def duplicate_devices(built: list[BuiltDevices]) -> list[Problem]:
    """Every repeated device id or endpoint name, pointing at its first occurrence."""
    problems: list[Problem] = []
    first_id: dict[str, str] = {}
    first_endpoint: dict[str, tuple[str, str]] = {}
    for part in built:
        rows, cid = part.rows, _collection_of(part)
        for row, (device_id, endpoint) in enumerate(zip(rows.ids, rows.endpoints, strict=True)):
            where = f"{part.path}:{rows.lines[row]}"
            prefix = f"devices[{rows.positions[row]}]"
            if device_id in first_id:
                first = first_id[device_id]
                message = f"duplicate device id {device_id}, first declared at {first}"
                line = rows.line_of(row, "deviceId")
                problems.append(Problem(part.path, line, f"{prefix}.deviceId", message))
            else:
                first_id[device_id] = where
            if endpoint in first_endpoint:
                other, owner = first_endpoint[endpoint]
                message = f"endpoint {endpoint!r} is already declared at {other} "
                message += f"(collection {owner})"
                line = rows.line_of(row, "endpoint")
                problems.append(Problem(part.path, line, f"{prefix}.endpoint", message))
            else:
                first_endpoint[endpoint] = (where, cid)
    return problems


def _collection_of(part: BuiltDevices) -> str:
    return next(iter(part.devices.values())).collection_id if part.devices else "?"
