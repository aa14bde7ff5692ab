"""Id lists for `... IN (?, ?, ...)` queries, padded to a few fixed lengths.

SQLite compiles a statement per distinct SQL text, and the sqlite3 module keeps up to 128
of them per connection. An IN list as long as each call's ids made a new text for nearly
every length a big revision's slices had: statements made while that revision's objects
filled the heap, kept in the cache after it was gone, each one keeping a 1 MiB pymalloc
arena from going back to the system (bench/README.md, big_commit, mem7 and mem8). Padded
with copies of the chunk's last id (an IN list matches a row once however often its id is
listed), a query has at most `len(LENGTHS) + 1` texts, each made once and then reused.
Portable SQL: the PostgreSQL store runs the same texts. Used by `writer`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

LENGTHS = (1, 16, 100)  # and the caller's chunk size: at most 6x the ids asked


def padded_chunks(ids: Sequence[str], most: int) -> Iterator[tuple[str, list[str]]]:
    """Per `most` of `ids`: ("?, ?, ...", the chunk's ids padded to that many marks), the
    smallest of `LENGTHS` (or `most`) that holds the chunk. Nothing for no ids."""
    for first in range(0, len(ids), most):
        chunk = list(ids[first:first + most])
        length = next((n for n in LENGTHS if n >= len(chunk) and n < most), most)
        chunk += [chunk[-1]] * (length - len(chunk))
        yield ", ".join("?" * length), chunk
