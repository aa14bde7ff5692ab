"""What `fota plan` compares a proposed desired state with: the devices as a running
reconciler last saw them, read from its state file (read only) or from its HTTP API.

Both give `DeviceView` values keyed by device id; a collection the reconciler does not
know yet (added by the pull request) simply has no observed devices. Called by
`review.cmd` only.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reconciler.engine.drift import DRIFTED
from reconciler.model.desired import DesiredState
from reconciler.store import DeviceView, open_reader
from reconciler.store.schema import SchemaError


def from_state(desired: DesiredState, state: Path) -> dict[str, DeviceView]:
    """Raises ValueError when `state` is not a fota state file (or not one this version
    reads), OSError when it cannot be read."""
    try:
        reader = open_reader(state)
        try:
            return {v.device_id: v for cid in desired.collections for v in reader.devices(cid)}
        finally:
            reader.close()
    except (sqlite3.Error, SchemaError) as exc:
        raise ValueError(f"{state} is not a fota state file ({exc})") from exc


def from_api(desired: DesiredState, base: str, token: str | None) -> dict[str, DeviceView]:
    """GET /collections, then /collections/{cid}/devices for every collection of the
    proposed state the reconciler has. Raises ValueError when `base` does not answer as
    a fota API (a 404, HTML, another JSON shape): comparing with nothing would claim
    every device unreported."""
    root = base.rstrip("/")
    known = _collections(root, token)
    found: dict[str, DeviceView] = {}
    for cid in desired.collections:
        if cid not in known:
            continue  # a collection the pull request adds
        body = _get(root, f"/collections/{quote(cid)}/devices", token)
        items = body.get("devices")
        if not isinstance(items, list) or not all(_is_device(i) for i in items):
            raise _not_fota(root, f"/collections/{cid}/devices has no device list")
        for item in items:
            view = _view(cid, item)
            found[view.device_id] = view
    return found


def _collections(root: str, token: str | None) -> set[str]:
    items = _get(root, "/collections", token).get("collections")
    if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("collectionId"), str) for i in items):
        raise _not_fota(root, "/collections has no collection list")
    return {i["collectionId"] for i in items}


def _is_device(item: object) -> bool:
    return isinstance(item, dict) and isinstance(item.get("deviceId"), str)


def _not_fota(root: str, why: str) -> ValueError:
    return ValueError(f"{root} is not a fota API: {why}")


def _get(root: str, path: str, token: str | None) -> dict[str, Any]:
    request = urllib.request.Request(root + path,
                                     headers={"X-API-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ValueError(f"{root}: GET {path} answered {exc.code} "
                             "(set FOTA_API_TOKEN to an accepted token)") from exc
        raise _not_fota(root, f"GET {path} answered {exc.code}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _not_fota(root, f"GET {path} did not answer JSON") from exc
    if not isinstance(data, dict):
        raise _not_fota(root, f"GET {path} did not answer a JSON object")
    return data


def _view(collection_id: str, item: dict[str, Any]) -> DeviceView:
    fw: dict[str, Any] = item.get("firmware") or {}
    return DeviceView(
        device_id=str(item["deviceId"]), collection_id=collection_id,
        tags=item.get("tags") or {}, current_image_id=fw.get("currentFirmwareId"),
        target_image_id=fw.get("targetFirmwareId"), firmware_version=fw.get("firmwareVersion"),
        serial_number=fw.get("serialNumber"), model_number=fw.get("modelNumber"),
        manufacturer=fw.get("manufacturer"), state=fw.get("state"),
        state_message=fw.get("stateMessage"), drift=_drift(fw.get("stateMessage")))


def _drift(message: object) -> str | None:
    """"runs 1.0, should run 2.0" out of "drifted: runs 1.0, should run 2.0; ..."."""
    if not isinstance(message, str) or not message.startswith(DRIFTED):
        return None
    return message[len(DRIFTED):].split("; ", 1)[0]
