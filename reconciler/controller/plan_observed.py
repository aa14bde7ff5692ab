"""What `fota plan` compares a proposed desired state with: the devices as a running
reconciler last saw them, read from its state file (read only) or from its HTTP API.

Both give `DeviceView` values keyed by device id; a collection the reconciler does not
know yet (added by the pull request) simply has no observed devices. Called by
`plan_cmd` only.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
    """GET /collections/{cid}/devices for every collection of the proposed state."""
    found: dict[str, DeviceView] = {}
    for cid in desired.collections:
        body = _get(f"{base.rstrip('/')}/collections/{quote(cid)}/devices", token)
        for item in body.get("devices", []) if body else []:
            view = _view(cid, item)
            found[view.device_id] = view
    return found


def _get(url: str, token: str | None) -> dict[str, Any] | None:
    request = urllib.request.Request(url, headers={"X-API-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None  # a collection the running reconciler does not have yet
        raise


def _view(collection_id: str, item: dict[str, Any]) -> DeviceView:
    fw: dict[str, Any] = item.get("firmware") or {}
    return DeviceView(
        device_id=str(item["deviceId"]), collection_id=collection_id,
        tags=item.get("tags") or {}, current_image_id=fw.get("currentFirmwareId"),
        target_image_id=fw.get("targetFirmwareId"), firmware_version=fw.get("firmwareVersion"),
        serial_number=fw.get("serialNumber"), model_number=fw.get("modelNumber"),
        manufacturer=fw.get("manufacturer"), state=fw.get("state"),
        state_message=fw.get("stateMessage"))
