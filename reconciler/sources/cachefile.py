"""The parse cache's file format: a parsed file's wire tuple, marshalled in pieces.

marshal holds the GIL for a whole call, and one call over a 200,000-device list's
columns took 30-90 ms (dumps, then loads after a restart) in the source's worker
thread: a pause of the event loop as long. So each list or dict of the wire tuple
longer than `PIECE` entries is marshalled `PIECE` entries at a time, and any other
thread may take the GIL between two pieces. A file is a blake2b digest of the rest (a
torn or foreign file is refused before marshal, which trusts its input, sees it), then
records of a 4-byte length and marshal bytes: the first the layout, one record per
piece after it. Used by `reconciler.sources.parsing.ParseCache`.
"""

from __future__ import annotations

import hashlib
import marshal
import struct
from collections.abc import Iterator
from itertools import islice
from typing import Any

PIECE = 10_000  # entries per marshal call: about 1-2 ms for a device list's column
_WHOLE, _LIST, _DICT = 0, 1, 2
_LENGTH = struct.Struct("<I")


def seal(wire: tuple[Any, ...]) -> bytes:
    """The file's bytes for `wire`."""
    layout: list[tuple[int, int]] = []
    records: list[bytes] = []
    for value in wire:
        pieces = _pieces(value)
        layout.append((_kind(value), len(pieces)))
        records.extend(pieces)
    body = b"".join(_LENGTH.pack(len(r)) + r for r in [marshal.dumps(tuple(layout)), *records])
    return hashlib.blake2b(body, digest_size=16).digest() + body


def unseal(data: bytes) -> tuple[Any, ...]:
    """The wire tuple `seal` wrote, or ValueError for any other bytes."""
    digest, body = data[:16], memoryview(data)[16:]
    if hashlib.blake2b(body, digest_size=16).digest() != digest:
        raise ValueError("cache file does not match its digest")
    try:
        records = _records(body)
        return tuple(_joined(kind, [marshal.loads(next(records)) for _ in range(count)])
                     for kind, count in marshal.loads(next(records)))
    except (StopIteration, struct.error) as exc:  # a digest of bytes of another layout
        raise ValueError("cache file is not in this layout") from exc


def _kind(value: Any) -> int:
    if isinstance(value, list) and len(value) > PIECE:
        return _LIST
    return _DICT if isinstance(value, dict) and len(value) > PIECE else _WHOLE


def _pieces(value: Any) -> list[bytes]:
    """`value` marshalled `PIECE` entries at a time (a long list or dict), else whole."""
    kind = _kind(value)
    if kind == _LIST:
        return [marshal.dumps(value[at:at + PIECE]) for at in range(0, len(value), PIECE)]
    if kind == _DICT:
        items = iter(value.items())
        return [marshal.dumps(dict(islice(items, PIECE)))
                for _ in range(0, len(value), PIECE)]
    return [marshal.dumps(value)]


def _joined(kind: int, pieces: list[Any]) -> Any:
    """The value `_pieces` cut into `pieces` (each joined with a C-level call per piece)."""
    if kind == _WHOLE:
        return pieces[0]
    joined: Any = [] if kind == _LIST else {}
    for piece in pieces:
        (joined.extend if kind == _LIST else joined.update)(piece)
    return joined


def _records(body: memoryview) -> Iterator[memoryview]:
    at = 0
    while at < len(body):
        (size,) = _LENGTH.unpack_from(body, at)
        yield body[at + 4:at + 4 + size]
        at += 4 + size
