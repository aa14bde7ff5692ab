"""Turning what a device answered (reads and Observe notifications) into a `DeviceReport`.

`merge_report` is pure: the decoded values of a Read of /3/0 and /5/0 or of a Notify on
/5/0/3 or /5/0/5 over the previous report. Unknown or malformed values leave the
previous value in place rather than failing. `Reports` is the controller's write-through
view of the store's reports (the controller is their only writer), so a reconcile reads
a device's report from memory instead of a SQLite query per decision. It remembers the
absence of a report too (a silent queue-mode device has none, and each of its Registers
asked the store again): a set of device ids, the strings the desired state holds. Only
the node that owns a device writes its report (fenced), so what this node holds goes
stale only while another node owns the device; the Decider forgets it when the device
comes back (`reload`, or a batch of them: `controller.reloads`), which primes both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from reconciler import heap
from reconciler.model.cluster import Fence
from reconciler.model.lwm2m import (
    DEV_FIRMWARE_VERSION,
    DEV_MANUFACTURER,
    DEV_MODEL,
    DEV_SERIAL,
    FW_DELIVERY_METHOD,
    FW_STATE,
    FW_UPDATE_RESULT,
    DeliveryMethod,
    FirmwareState,
    Path,
    UpdateResult,
)
from reconciler.model.observed import DeviceReport
from reconciler.store import Store


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _code(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    text = _text(value)
    return int(text) if text is not None and text.strip().isdigit() else None


def _enum(factory: Callable[[int], object]) -> Callable[[object], object]:
    def convert(value: object) -> object:
        code = _code(value)
        return None if code is None else factory(code)

    return convert


# resource -> (DeviceReport field, converter)
FIELDS: dict[Path, tuple[str, Callable[[object], object]]] = {
    DEV_FIRMWARE_VERSION: ("firmware_version", _text),
    DEV_SERIAL: ("serial_number", _text),
    DEV_MODEL: ("model_number", _text),
    DEV_MANUFACTURER: ("manufacturer", _text),
    FW_STATE: ("fw_state", _enum(FirmwareState)),
    FW_UPDATE_RESULT: ("update_result", _enum(UpdateResult)),
    FW_DELIVERY_METHOD: ("delivery_method", _enum(DeliveryMethod)),
}


def version_in(values: Mapping[Path, object]) -> str | None:
    """/3/0/3 among `values`, trimmed as the engine compares it (`Delta.on_target`)."""
    text = _text(values.get(DEV_FIRMWARE_VERSION))
    return None if text is None else text.strip()


def merge_report(previous: DeviceReport | None, endpoint: str,
                 values: Mapping[Path, object], now: float,
                 unknown: Sequence[Path] = ()) -> DeviceReport:
    """The previous report updated with every known resource in `values`, stamped `now`;
    the resources in `unknown` (not read, and what was held of them is stale) set None."""
    changes: dict[str, object] = {"reported_at": now}
    for path in unknown:
        changes[FIELDS[path][0]] = None
    for path, value in values.items():
        known = FIELDS.get(Path(path.object_id, path.instance, path.resource))
        if known is None:
            continue
        converted = known[1](value)
        if converted is not None:
            changes[known[0]] = converted
    base = previous if previous is not None else DeviceReport(endpoint=endpoint)
    return base.with_values(**changes)


class Reports:
    """Reports by device id: read from the store once, then kept as written. Every
    write goes to the store first (a failed write changes nothing here)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # Several nodes: what a report write must still hold (Ownership.fence); a node
        # that lost the device to another has its write refused (NotOwner).
        self.fence: Callable[[str], Fence] | None = None
        self._known: dict[str, DeviceReport] = {}
        self._size = heap.Shrinker()
        # Devices the store has no report of: bounded by the desired state's devices.
        self._absent: set[str] = set()
        self._absent_size = heap.Shrinker()

    def get(self, device_id: str) -> DeviceReport | None:
        report = self._known.get(device_id)
        if report is None and device_id not in self._absent:
            self.prime(device_id, self._store.report(device_id))
            report = self._known.get(device_id)
        return report

    def prime(self, device_id: str, report: DeviceReport | None) -> None:
        """What the store said of the device's report (None: it has none)."""
        if report is None:
            self._absent.add(device_id)
            self._absent_size.added(self._absent)
        else:
            self._known[device_id] = report
            self._size.added(self._known)

    def fill(self, device_id: str, report: DeviceReport | None) -> None:
        """`prime` with what a batch read, unless a merge or a read since the device
        was forgotten holds something as new (`controller.reloads`)."""
        if device_id not in self._known and device_id not in self._absent:
            self.prime(device_id, report)

    def get_many(self, device_ids: Sequence[str]) -> dict[str, DeviceReport]:
        """`get` for many devices (those with a report): the ones not in memory in one
        store query, not one each (a revision's retarget slice asks 500 at once)."""
        found = {d: r for d in device_ids if (r := self._known.get(d)) is not None}
        missing = [d for d in device_ids if d not in found and d not in self._absent]
        if missing:
            stored = self._store.reports(missing)
            for device_id in missing:
                self.prime(device_id, stored.get(device_id))
            found.update(stored)
        return found

    def forget(self, device_id: str) -> None:
        """The device left the desired state, or comes back from another node: what is
        held of its report goes (the store keeps it)."""
        if self._known.pop(device_id, None) is not None:
            self._size.removed(self._known)
        self._gone(device_id)

    def _gone(self, device_id: str) -> None:
        if device_id in self._absent:
            self._absent.discard(device_id)
            self._absent_size.removed(self._absent)

    def merge(self, device_id: str, endpoint: str, values: Mapping[Path, object],
              now: float, unknown: Sequence[Path] = ()) -> DeviceReport:
        """Merge `values` into the device's report and persist it (`merge_report`)."""
        report = merge_report(self.get(device_id), endpoint, values, now, unknown)
        fence = self.fence(endpoint) if self.fence is not None else None
        self._store.put_report(device_id, report, fence=fence)
        self._gone(device_id)
        self.prime(device_id, report)
        return report
