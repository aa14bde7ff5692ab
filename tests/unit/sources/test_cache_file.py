"""The parse cache's file format (`sources.cachefile`): long columns are marshalled a
piece at a time, so no single marshal call (which holds the GIL) covers a whole
200,000-device list; what comes back is exactly what went in."""

from __future__ import annotations

import marshal
import os
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources import cachefile
from reconciler.sources.devicelist import DeviceRows
from reconciler.sources.parsing import ParseCache


class _Widest:
    """marshal.dumps / loads, remembering the most entries one call handled."""

    def __init__(self) -> None:
        self.most = 0

    def _saw(self, value: Any) -> Any:
        if isinstance(value, list | dict):
            self.most = max(self.most, len(value))
        return value

    def dumps(self, value: Any) -> bytes:
        return marshal.dumps(self._saw(value))

    def loads(self, data: Any) -> Any:
        return self._saw(marshal.loads(data))


def _devices(count: int) -> str:
    return "devices:\n" + "".join(f'- {{"endpoint": "ep-{i:04d}", "tags": {{"n": "{i}"}}}}\n'
                                  for i in range(count))


def test_long_columns_round_trip_a_piece_per_marshal_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cachefile, "PIECE", 7)
    widest = _Widest()
    monkeypatch.setattr(cachefile, "marshal", widest)
    wire = (list(range(50)), {f"k{i}": [i] for i in range(22)}, ["short"], {"a": 1},
            None, 7, (1, "x"), True, list(range(7)))
    sealed = cachefile.seal(wire)
    assert cachefile.unseal(sealed) == wire
    assert widest.most == 7
    assert list(cachefile.unseal(sealed)[1]) == [f"k{i}" for i in range(22)]  # in order


def test_bytes_that_are_not_a_sealed_file_are_refused() -> None:
    sealed = cachefile.seal((list(range(30)), "x"))
    with pytest.raises(ValueError):
        cachefile.unseal(sealed[:-1])
    with pytest.raises(ValueError):
        cachefile.unseal(sealed[:20] + bytes([sealed[20] ^ 1]) + sealed[21:])


def test_a_device_list_cut_into_pieces_reads_back_from_disk_unparsed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cachefile, "PIECE", 7)
    data = _devices(30).encode()
    parsed = ParseCache(tmp_path).get("devices", "blob1", lambda: data)
    again = ParseCache(tmp_path)
    read = again.get("devices", "blob1", lambda: pytest.fail("parsed again"))
    assert again.parse_count == 0 and isinstance(read, DeviceRows)
    assert read.to_wire() == parsed.to_wire() and len(read.ids) == 30 and len(read.tags) == 30


def test_prune_removes_the_tmp_files_of_killed_children_only_once_no_child_can_own_them(
        tmp_path: Path) -> None:
    cache = ParseCache(tmp_path)
    killed = tmp_path / "ab.devices.12.4242.tmp"  # a child SIGKILLed while writing
    running = tmp_path / "cd.devices.12.4343.tmp"  # a child writing now
    for path in (killed, running):
        path.write_bytes(b"half a file")
    old = time.time() - 601
    os.utime(killed, (old, old))
    cache.prune_disk(set(), tmp_after=600.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [running.name]
