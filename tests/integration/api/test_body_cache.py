"""The body cache over a real reader: hits until any commit, bounded in entries and bytes."""

from __future__ import annotations

from typing import Any

from reconciler.api.cache import BodyCache
from reconciler.model.observed import DeviceReport
from reconciler.store import SqliteReader, SqliteStore


class Renders:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, key: str, size: int = 4) -> Any:
        def render() -> bytes:
            self.calls.append(key)
            return key.encode().ljust(size, b".")
        return render


def test_a_body_is_rendered_once_until_the_store_commits(reader: SqliteReader,
                                                         store: SqliteStore, ref: Any) -> None:
    cache, renders = BodyCache(reader), Renders()
    assert cache.get("a", renders("a")) == b"a..."
    assert cache.get("a", renders("a")) == b"a..."
    assert renders.calls == ["a"]
    store.put_report(ref.device, DeviceReport("urn:imei:1", firmware_version="2.0"))
    cache.get("a", renders("a"))
    assert renders.calls == ["a", "a"]


def test_the_oldest_bodies_go_first_when_entries_or_bytes_run_out(
        reader: SqliteReader) -> None:
    cache, renders = BodyCache(reader, entries=2, max_bytes=100), Renders()
    for key in ("a", "b", "a", "c"):  # "a" used again, so "b" is the oldest
        cache.get(key, renders(key))
    cache.get("a", renders("a"))
    cache.get("b", renders("b"))
    assert renders.calls == ["a", "b", "c", "b"]
    cache.get("big", renders("big", size=90))  # 90 + 4 + 4 > 100: evicts down to fit
    cache.get("big", renders("big", size=90))
    assert renders.calls[-1] == "big" and renders.calls.count("big") == 1
    cache.get("huge", renders("huge", size=101))  # larger than the whole cache: not kept
    cache.get("huge", renders("huge", size=101))
    assert renders.calls.count("huge") == 2


async def test_an_offloaded_render_is_cached_like_any_other(reader: SqliteReader) -> None:
    cache, renders = BodyCache(reader), Renders()
    assert await cache.get_offloaded("x", renders("x")) == b"x..."
    assert await cache.get_offloaded("x", renders("x")) == b"x..."
    assert renders.calls == ["x"]
