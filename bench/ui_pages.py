"""Benchmark of the dashboard's device table over 100,000 devices; prints one JSON object.

The store of bench/api.py (every device reported, a third Downloading, tags site=s0..s49)
plus three UpdateFailed devices near the end of the id order: the worst case for a
filter, which has to walk the whole id range to fill a page. Each figure is the median
milliseconds of one keyset page (50 rows) through `SqliteReader.device_page`, and of the
whole /ui/devices HTML page through the app, deep (page 1,000) and filtered.

Run: .venv/bin/python bench/ui_pages.py [--devices 100000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from api import BIG, NEW, device_id, populate, snapshot  # bench/api.py, this directory

from reconciler.api import create_app
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.store import DeviceQuery, SqliteReader, open_reader, open_store


def median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def queries(reader: SqliteReader, devices: int, repeat: int) -> dict[str, float]:
    deep = device_id(50 * 1000)

    def page(**kwargs: object) -> Callable[[], object]:
        return lambda: reader.device_page(DeviceQuery(**kwargs))  # type: ignore[arg-type]

    return {
        "first_page_ms": median_ms(page(), repeat),
        "page_1000_ms": median_ms(page(after=deep), repeat),
        "collection_page_1000_ms": median_ms(page(collection_id=BIG, after=deep), repeat),
        "state_common_ms": median_ms(page(state="Downloading"), repeat),
        "state_rare_ms": median_ms(page(state="UpdateFailed"), repeat),
        "tag_ms": median_ms(page(tag=("site", "s7")), repeat),
        "tag_absent_ms": median_ms(page(tag=("site", "nowhere")), repeat),
    }


def html(reader: SqliteReader, repeat: int) -> dict[str, float]:
    """The whole page through the app in-process (ASGI, no sockets): query, template,
    body. Each request asks for a filter the cache has not seen (a fresh `after`)."""
    app = create_app(reader)
    deep = [device_id(50 * 1000 + n) for n in range(repeat)]

    async def measure() -> dict[str, float]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://ui") as http:
            async def timed(urls: list[str]) -> float:
                times = []
                for url in urls:
                    started = time.perf_counter()
                    (await http.get(url)).raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
                return round(statistics.median(times), 2)
            return {
                "html_page_1000_ms": await timed([f"/ui/devices?after={d}" for d in deep]),
                "html_state_rare_ms": await timed(
                    [f"/ui/devices?state=UpdateFailed&after={d}" for d in deep]),
                "html_overview_ms": await timed(["/ui"]),
            }
    return asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fota.db"
        store = open_store(path)
        populate(store, snapshot(args.devices, 0))
        for n in (args.devices - 30, args.devices - 20, args.devices - 10):
            store.put_progress(DeviceProgress(device_id(n), NEW, UpdateState.UPDATE_FAILED,
                                              "Update Result 5", attempts=1))
        store.close()
        reader = open_reader(path)
        try:
            result = {"devices": args.devices, **queries(reader, args.devices, args.repeat)}
            result.update(html(reader, args.repeat))
        finally:
            reader.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
