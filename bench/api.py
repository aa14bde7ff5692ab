"""Benchmark of the read-only API over a 110,000-device store; prints one JSON object.

A 100,000-device collection (usage is measured there) and a 10,000-device collection
(the device list is measured there), every device with a report and a third with
progress, in a real SQLite file. uvicorn serves `create_app` in a subprocess on loopback;
wrk (Debian package `wrk`) generates the load from another process. "cold" figures force
a fresh render: a store write to a device of the answer before each request.
"under_writes": the 10,000-device list and /status while a writer thread in this process
keeps updating the progress of 1,000 devices of that collection, ten per transaction
(issue 11: >= 300 req/s and a /status p99 <= 20 ms). "metrics_scrape_100k": GET /metrics,
one at a time (< 50 ms).

Run: .venv/bin/python bench/api.py [--devices 100000] [--duration 5]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import procs

from reconciler.model.desired import Collection, DesiredState, Device, FirmwareImage, Management
from reconciler.model.ids import encode_base24
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState
from reconciler.store import SqliteStore, open_reader, open_store

BIG, SMALL = "17dh0cf43jf000", "17dh0cf43jf001"
OLD, NEW, SMALL_IMG = "17dh0cf43jf100", "17dh0cf43jf101", "17dh0cf43jf102"


def device_id(n: int) -> str:
    return "1" + encode_base24(n).rjust(12, "0")


def snapshot(big: int, small: int) -> DesiredState:
    def image(iid: str, cid: str, version: str) -> FirmwareImage:
        return FirmwareImage(iid, cid, version, f"{version}.bin", iid * 4, 65536,
                             1700000000000, f"images/{version}.bin")

    images = {OLD: image(OLD, BIG, "1.0"), NEW: image(NEW, BIG, "2.0"),
              SMALL_IMG: image(SMALL_IMG, SMALL, "7.1")}
    collections = {BIG: Collection(BIG, "big", Management.COLLECTION, NEW),
                   SMALL: Collection(SMALL, "small", Management.COLLECTION, SMALL_IMG)}
    devices = {device_id(n): Device(device_id(n), BIG if n < big else SMALL, f"ep-{n}",
                                    tags={"site": f"s{n % 50}"})
               for n in range(big + small)}
    return DesiredState("bench", collections, images, devices)


def populate(store: SqliteStore, desired: DesiredState) -> None:
    store.apply_desired(desired)
    for n, d in enumerate(desired.devices.values()):
        version = ("1.0" if n % 2 else "2.0") if d.collection_id == BIG else "7.1"
        store.put_report(d.device_id, DeviceReport(d.endpoint, firmware_version=version,
                                                   serial_number=f"SN{n}",
                                                   model_number="nrf9160",
                                                   manufacturer="Nordic"))
        if n % 3 == 0:
            store.put_progress(DeviceProgress(d.device_id, NEW, UpdateState.DOWNLOADING,
                                              "block 3 of 64", attempts=1))


def serve(path: str, port: int) -> None:
    import uvicorn  # only the server process needs it

    from reconciler.api import create_app
    app = create_app(open_reader(Path(path)), tokens=["bench-token"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wrk(url: str, connections: int, duration: int) -> dict[str, float]:
    """Steady state: one warm-up request first, so the figures are of cached bodies."""
    httpx.get(url, headers={"X-API-Token": "bench-token"}, timeout=30).raise_for_status()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
         "-H", "X-API-Token: bench-token", url],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    result = {"req_per_s": rps}
    for pct in ("50", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if found:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
            result[f"p{pct}_ms"] = round(float(found.group(1)) * scale, 2)
    if "Non-2xx" in out or "Socket errors" in out:
        result["errors"] = 1.0
    return result


def cold(http: httpx.Client, store: SqliteStore, url: str, device: int = 0,
         rounds: int = 15) -> dict[str, float]:
    """Latency when every request must render afresh: a write to a device the answer
    shows (`device`, of the collection asked about) precedes each one."""
    times = []
    for n in range(rounds):
        store.put_report(device_id(device), DeviceReport(f"ep-{device}",
                                                         firmware_version=f"9.{n}"))
        start = time.perf_counter()
        assert http.get(url).status_code == 200
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


UPDATING = 1_000  # devices of the 10,000-device collection the writer keeps updating
STEPS = (UpdateState.INITIALIZING, UpdateState.DOWNLOADING, UpdateState.DOWNLOADED,
         UpdateState.UPDATING)


def write_progress(store: SqliteStore, first: int, stop: threading.Event,
                   written: list[int]) -> None:
    """A rollout's writes: ten devices' progress per transaction, about 100 a second."""
    n = 0
    while not stop.is_set():
        step = STEPS[(n // UPDATING) % len(STEPS)]
        store.put_progress_many([
            (DeviceProgress(device_id(first + (n + k) % UPDATING), SMALL_IMG, step,
                            f"block {n}", attempts=1), ()) for k in range(10)])
        n += 10
        stop.wait(0.01)
    written.append(n)


def under_writes(base: str, store: SqliteStore, first: int, duration: int) -> dict[str, object]:
    stop, written = threading.Event(), list[int]()
    writer = threading.Thread(target=write_progress, args=(store, first, stop, written))
    started = time.perf_counter()
    writer.start()
    try:
        lists = wrk(base + f"/collections/{SMALL}/devices", 4, duration)
        status = wrk(base + "/status", 4, duration)
    finally:
        stop.set()
        writer.join()
    return {"devices_list_10k": lists, "status": status,
            "device_updates_per_s": round(written[0] / (time.perf_counter() - started))}


def scrape(http: httpx.Client, rounds: int = 20) -> dict[str, float] | None:
    """GET /metrics one at a time (None: this API has no /metrics)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        r = http.get("/metrics")
        times.append((time.perf_counter() - start) * 1000)
        if r.status_code == 404:
            return None
        r.raise_for_status()
    return {"p50_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def wait_ready(http: httpx.Client) -> None:
    for _ in range(300):
        try:
            if http.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fota.db"
        store = open_store(path)
        started = time.perf_counter()
        populate(store, snapshot(args.devices, args.small))
        setup_s = time.perf_counter() - started
        port = procs.free_tcp_port()
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(path), str(port)])
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, headers={"X-API-Token": "bench-token"},
                              timeout=30) as http:
                wait_ready(http)
                devices_url = f"/collections/{SMALL}/devices"
                usage_url = f"/collections/{BIG}/firmware/{NEW}/usage"
                small_url = f"/collections/{SMALL}/devices/{device_id(args.devices + 7)}"
                result = {
                    "store_devices": args.devices + args.small,
                    "populate_s": round(setup_s, 1),
                    "devices_list_10k": wrk(base + devices_url, 4, args.duration),
                    "devices_list_10k_bytes": len(http.get(devices_url).content),
                    "devices_list_10k_cold": cold(http, store, devices_url, args.devices + 7),
                    "usage_100k": wrk(base + usage_url, 1, args.duration),
                    "usage_100k_cold": cold(http, store, usage_url),
                    "small_get": wrk(base + small_url, 8, args.duration),
                    "small_get_cold": cold(http, store, small_url),
                    "metrics_scrape_100k": scrape(http),
                    "under_writes": under_writes(base, store, args.devices, args.duration),
                }
        finally:
            server.terminate()
            server.wait(timeout=10)
            store.close()
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
