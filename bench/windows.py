"""Cost of a decision under maintenance windows, in the fleet size: decide() for every
device of a collection with a window, at 1,000 and at 100,000 devices.

Each device is Downloaded while its Execute window is closed (the decision that asks the
window), half of them tagged so a second, tag-scoped window applies too. The window's
next opening is memoised per window (`engine.windows`), so the cost per decision must not
grow with the fleet: goal, the two figures within 20 % of each other. Measured in CPU
time: the first pass (every device moves to Downloaded and is held) and the re-checks
that follow while the window stays closed (the steady cost). Pure engine work: no store,
no sockets. Prints one JSON object.
Run: .venv/bin/python bench/windows.py
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime

from reconciler.engine import decide, diff
from reconciler.engine.windows import occurrence
from reconciler.model.desired import (
    Collection,
    DesiredState,
    Device,
    FirmwareImage,
    MaintenanceWindow,
    Management,
    RolloutPolicy,
    WindowGate,
)
from reconciler.model.lwm2m import FirmwareState, Registration
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState

SIZES = (1_000, 100_000)
REPEAT = 3
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp()  # windows closed until 01:00Z
WINDOWS = (
    MaintenanceWindow("night", "0 2 * * *", 7200.0, "Europe/Oslo", WindowGate.EXECUTE),
    MaintenanceWindow("oslo", "30 3 * * 1-5", 3600.0, "Europe/Oslo", WindowGate.BOTH,
                      {"site": "oslo"}),
)
NEW = FirmwareImage("bbbb2", "c0ll", "2.0", "fw.bin", "0" * 64, 200_000, 1, "images/fw.bin")


def fleet(size: int) -> DesiredState:
    coll = Collection("c0ll", "fleet", Management.COLLECTION, NEW.image_id,
                      rollout=RolloutPolicy(windows=WINDOWS))
    devices = {f"d{n}": Device(f"d{n}", "c0ll", f"ep-{n}",
                               tags={"site": "oslo" if n % 2 else "bergen"})
               for n in range(size)}
    return DesiredState("rev", {"c0ll": coll}, {NEW.image_id: NEW}, devices)


def per_decision(size: int) -> tuple[float, float]:
    """CPU microseconds of diff + decide per device: the first pass (each device moves
    to Downloaded, held) and the median of REPEAT re-checks while the window is closed."""
    desired = fleet(size)
    reg = Registration("r1", "ep", "127.0.0.1", 5700, 300, "1.1", "U", False, ("/5/0",),
                       NOW - 100, NOW - 100)
    report = DeviceReport("ep", "1.0", fw_state=FirmwareState.DOWNLOADED, reported_at=NOW - 1)
    records = {d: DeviceProgress(d, NEW.image_id, UpdateState.DOWNLOADING, "downloading",
                                 attempts=1, phase_started_at=NOW - 60, deadline=NOW + 900)
               for d in desired.devices}
    passes = []
    for repeat in range(REPEAT + 1):
        now = NOW + repeat  # a fleet's decisions during one closed stretch
        started = time.process_time()  # CPU time: the machine is shared
        for device_id, record in records.items():
            result = decide(diff(desired, device_id, report, reg), record, now)
            assert result.progress is not None and result.progress.state is \
                UpdateState.DOWNLOADED
            records[device_id] = result.progress
        passes.append((time.process_time() - started) / size * 1e6)
    return passes[0], statistics.median(passes[1:])


def main() -> None:
    for window in WINDOWS:
        occurrence(window, NOW)  # the first computation is not a per-decision cost
    figures = {size: per_decision(size) for size in SIZES}
    small, large = figures[SIZES[0]][1], figures[SIZES[-1]][1]
    print(json.dumps({
        "benchmark": "window decisions",
        "windows": len(WINDOWS),
        "us_per_decision_first": {str(n): round(f[0], 2) for n, f in figures.items()},
        "us_per_decision": {str(n): round(f[1], 2) for n, f in figures.items()},
        "ratio_large_to_small": round(large / small, 3),
        "goal": "within 20 % of each other",
        "met": abs(large / small - 1) <= 0.2,
    }))


if __name__ == "__main__":
    main()
