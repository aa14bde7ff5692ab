"""`fota validate --credentials FILE`: every endpoint that requires PSK has a credential.

Runs on a valid `DesiredState`. Which endpoints require PSK is the server's own rule
(`reconciler.security.policy`, with `--security-default`); the devices found without a
credential (usually none, then nothing more is read) are located in their device files
through the parse cache of the load that just ran, and reported at the device's line,
naming where the requirement comes from. Only endpoints and the credentials file's name
are printed, never a key. Called by `reconciler.sources.validate_cmd`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler.model.desired import DesiredState, Device, SecurityMode
from reconciler.security.credentials import Credentials
from reconciler.security.policy import SecurityPolicy
from reconciler.sources.devicelist import DeviceRows
from reconciler.sources.layout import Group, group_files
from reconciler.sources.notifications import split_notifications
from reconciler.sources.parsing import ParseCache, ParsedDoc
from reconciler.sources.problems import Problem
from reconciler.sources.snapshot import DirectorySnapshot, FileEntry


def missing_credentials(root: Path, state: DesiredState, credentials: Credentials,
                        default: SecurityMode, cache: ParseCache) -> list[Problem]:
    policy = SecurityPolicy(default, state)
    missing = {d.endpoint: d for d in state.devices.values()
               if policy.requires_psk(d.endpoint)
               and credentials.for_endpoint(d.endpoint) is None}
    if not missing:
        return []
    snap = DirectorySnapshot(root, state.revision)
    groups, _ = group_files(split_notifications(snap.manifest_files())[1])
    problems: list[Problem] = []
    for group in groups:
        for entry in group.devices:
            rows: DeviceRows = cache.get("devices", entry.key, _reader(snap, entry))
            for row, endpoint in enumerate(rows.endpoints):
                device = missing.get(endpoint)
                if device is not None:
                    problems.append(_problem(snap, cache, group, entry, rows, row, device,
                                             state, default, credentials.source))
    return sorted(problems)


def _problem(snap: DirectorySnapshot, cache: ParseCache, group: Group, entry: FileEntry,
             rows: DeviceRows, row: int, device: Device, state: DesiredState,
             default: SecurityMode, source: str) -> Problem:
    collection = state.collections.get(device.collection_id)
    if device.security is not None:
        name, why = "security", "its own `security: psk`"
    elif collection is not None and collection.security is not None:
        name, why = "endpoint", f"its collection's `security: psk` at {_at(snap, cache, group)}"
    else:
        name, why = "endpoint", f"the server's default, --security-default {default}"
    message = (f"endpoint {device.endpoint!r} requires PSK ({why}) and has no credential "
               f"in {source}")
    field = f"devices[{rows.positions[row]}].{name}"
    return Problem(entry.path, rows.line_of(row, name), field, message)


def _at(snap: DirectorySnapshot, cache: ParseCache, group: Group) -> str:
    entry = group.collection
    if entry is None:
        return "its collection.yaml"
    doc: ParsedDoc = cache.get("collection", entry.key, _reader(snap, entry))
    return f"{entry.path}:{doc.line_of('security')}"


def _reader(snap: DirectorySnapshot, entry: FileEntry) -> Callable[[], bytes]:
    return lambda: snap.read(entry)
