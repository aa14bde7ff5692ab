"""Event-log retention benchmark, printed as one JSON object: what pruning a large log
costs the writer.

A real SQLite file with `--devices` desired devices and `--events` events spread over
them (a third of the devices have more than the 100 a device keeps), all older than
`max_age`, plus a gone device's. `prune_events` then runs as `fota serve` runs it, call
after call until no work is left; every transaction's duration (lock wait included, the
store's own `on_write` hook) says how long a controller write could have waited on it.
A last call with nothing due shows the cost of the minute-by-minute look on a bounded log.

    .venv/bin/python bench/event_retention.py [--devices 10000] [--events 1000000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from reconciler.model.desired import Collection, DesiredState, Device, Management
from reconciler.model.observed import DeviceEvent, DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import EventRetention, SqliteStore, open_store
from reconciler.store.retention import DEVICE_TAIL

CID = "17dh0cf43jf001"
DAY = 86400.0


def populate(store: SqliteStore, devices: int, events: int, at: float) -> None:
    ids = [f"dev{n:06d}" for n in range(devices)]
    store.apply_desired(DesiredState("bench", {CID: Collection(CID, "c", Management.COLLECTION,
                                                               None)}, {},
                                     {d: Device(d, CID, f"ep-{d}") for d in ids}))
    heavy = ids[: devices // 3]  # these get most of the events: more than their tail
    per_batch = 1000
    for start in range(0, events, per_batch):
        batch = []
        for n in range(start, min(start + per_batch, events)):
            device = heavy[n % len(heavy)] if n % 4 else ids[n % devices]
            if n % 97 == 0:
                device = "gone000000"  # a device no desired state has
            batch.append((DeviceProgress(device, None, UpdateState.DOWNLOADING),
                          [DeviceEvent(device, at + n * 1e-3, "state", f"step {n}", "r1")]))
        store.put_progress_many(batch)


def run(devices: int, events: int, tmp: Path) -> dict[str, object]:
    store = open_store(tmp / "state.db")
    now = 100 * DAY
    started = time.perf_counter()
    populate(store, devices, events, now - 40 * DAY)
    populate_s = time.perf_counter() - started
    transactions: list[float] = []
    store.on_write = transactions.append
    retention = EventRetention(max_age=30 * DAY)
    calls, deleted = 0, 0
    started, cpu = time.perf_counter(), time.process_time()
    while True:
        done = store.prune_events(retention, now)
        calls, deleted = calls + 1, deleted + done.deleted
        if not done.more:
            break
    prune_s, prune_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    ms = sorted(t * 1000 for t in transactions) or [0.0]
    started = time.perf_counter()
    idle = store.prune_events(retention, now)
    idle_ms = (time.perf_counter() - started) * 1000
    left = _count(store)
    store.close()
    return {"devices": devices, "events": events, "populate_s": round(populate_s, 1),
            "deleted": deleted, "events_left": left,
            "bound_devices_times_tail": devices * DEVICE_TAIL,
            "calls": calls, "prune_s": round(prune_s, 2),
            "prune_cpu_s": round(prune_cpu_s, 2),
            "transactions": len(ms),
            "transaction_ms": {"p50": round(statistics.median(ms), 2),
                               "p99": round(ms[int(len(ms) * 0.99)], 2),
                               "max": round(ms[-1], 2)},
            "idle_call_ms": round(idle_ms, 2), "idle_call_deleted": idle.deleted}


def _count(store: SqliteStore) -> int:
    seen, cursor = 0, 0
    while page := store.events_after(cursor, limit=1000):
        seen, cursor = seen + len(page), page[-1].seq
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args.devices, args.events, Path(tmp))))


if __name__ == "__main__":
    main()
