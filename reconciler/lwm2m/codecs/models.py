"""Built-in LwM2M object models: resource id -> (name, type, multiple) for Objects 1, 3, 4, 5.

The codecs look resource types up here so TLV and plain-text values decode typed (an
integer, not raw bytes). Resources of other objects, and unknown ids, have no model and
decode as bytes (TLV, opaque) or str (text). Sources: the OMA LwM2M registry definitions of
Server (1), Device (3), Connectivity Monitoring (4) and Firmware Update (5), v1.0-1.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ResourceType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    UNSIGNED = "unsigned"
    FLOAT = "float"
    BOOLEAN = "boolean"
    OPAQUE = "opaque"
    TIME = "time"
    OBJLNK = "objlnk"
    NONE = "none"  # executable resources carry no value


@dataclass(frozen=True, slots=True)
class ResourceModel:
    resource_id: int
    name: str
    type: ResourceType
    multiple: bool = False


STR, INT, UNS, FLT, BOOL, OPQ, TIME, LNK, EXE = (
    ResourceType.STRING,
    ResourceType.INTEGER,
    ResourceType.UNSIGNED,
    ResourceType.FLOAT,
    ResourceType.BOOLEAN,
    ResourceType.OPAQUE,
    ResourceType.TIME,
    ResourceType.OBJLNK,
    ResourceType.NONE,
)

# (id, name, type, multiple) rows, as the registry lists them.
_ROWS: dict[int, list[tuple[int, str, ResourceType, bool]]] = {
    1: [
        (0, "Short Server ID", INT, False),
        (1, "Lifetime", INT, False),
        (2, "Default Minimum Period", INT, False),
        (3, "Default Maximum Period", INT, False),
        (4, "Disable", EXE, False),
        (5, "Disable Timeout", INT, False),
        (6, "Notification Storing When Disabled or Offline", BOOL, False),
        (7, "Binding", STR, False),
        (8, "Registration Update Trigger", EXE, False),
        (9, "Bootstrap-Request Trigger", EXE, False),
        (10, "APN Link", LNK, False),
        (11, "TLS-DTLS Alert Code", UNS, False),
        (12, "Last Bootstrapped", TIME, False),
        (13, "Registration Priority Order", UNS, False),
        (14, "Initial Registration Delay Timer", UNS, False),
        (15, "Registration Failure Block", BOOL, False),
        (16, "Bootstrap on Registration Failure", BOOL, False),
        (17, "Communication Retry Count", UNS, False),
        (18, "Communication Retry Timer", UNS, False),
        (19, "Communication Sequence Delay Timer", UNS, False),
        (20, "Communication Sequence Retry Count", UNS, False),
        (21, "Trigger", BOOL, False),
        (22, "Preferred Transport", STR, False),
        (23, "Mute Send", BOOL, False),
        (24, "Alternate APN Links", LNK, True),
        (25, "Supported Server Versions", STR, True),
        (26, "Default Notification Mode", INT, False),
        (27, "Profile ID Hash Algorithm", INT, False),
    ],
    3: [
        (0, "Manufacturer", STR, False),
        (1, "Model Number", STR, False),
        (2, "Serial Number", STR, False),
        (3, "Firmware Version", STR, False),
        (4, "Reboot", EXE, False),
        (5, "Factory Reset", EXE, False),
        (6, "Available Power Sources", INT, True),
        (7, "Power Source Voltage", INT, True),
        (8, "Power Source Current", INT, True),
        (9, "Battery Level", INT, False),
        (10, "Memory Free", INT, False),
        (11, "Error Code", INT, True),
        (12, "Reset Error Code", EXE, False),
        (13, "Current Time", TIME, False),
        (14, "UTC Offset", STR, False),
        (15, "Timezone", STR, False),
        (16, "Supported Binding and Modes", STR, False),
        (17, "Device Type", STR, False),
        (18, "Hardware Version", STR, False),
        (19, "Software Version", STR, False),
        (20, "Battery Status", INT, False),
        (21, "Memory Total", INT, False),
        (22, "ExtDevInfo", LNK, True),
    ],
    4: [
        (0, "Network Bearer", INT, False),
        (1, "Available Network Bearer", INT, True),
        (2, "Radio Signal Strength", INT, False),
        (3, "Link Quality", INT, False),
        (4, "IP Addresses", STR, True),
        (5, "Router IP Addresses", STR, True),
        (6, "Link Utilization", INT, False),
        (7, "APN", STR, True),
        (8, "Cell ID", INT, False),
        (9, "SMNC", INT, False),
        (10, "SMCC", INT, False),
        (11, "SignalSNR", INT, False),
        (12, "LAC", INT, False),
    ],
    5: [
        (0, "Package", OPQ, False),
        (1, "Package URI", STR, False),
        (2, "Update", EXE, False),
        (3, "State", INT, False),
        (5, "Update Result", INT, False),
        (6, "PkgName", STR, False),
        (7, "PkgVersion", STR, False),
        (8, "Firmware Update Protocol Support", INT, True),
        (9, "Firmware Update Delivery Method", INT, False),
        (10, "Cancel", EXE, False),
        (11, "Severity", INT, False),
        (12, "Last State Change Time", TIME, False),
        (13, "Maximum Defer Period", UNS, False),
    ],
}

OBJECT_MODELS: dict[int, dict[int, ResourceModel]] = {
    obj: {rid: ResourceModel(rid, name, kind, multi) for rid, name, kind, multi in rows}
    for obj, rows in _ROWS.items()
}


def resource_model(object_id: int, resource_id: int | None) -> ResourceModel | None:
    """The model of /object_id/*/resource_id, or None when unknown."""
    if resource_id is None:
        return None
    return OBJECT_MODELS.get(object_id, {}).get(resource_id)


def resource_type(object_id: int, resource_id: int | None) -> ResourceType | None:
    model = resource_model(object_id, resource_id)
    return model.type if model is not None else None
