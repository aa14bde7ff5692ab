"""Keyset pages of the device table for the dashboard: filter by collection, state and
tag, ordered by device id, resumed after the last id shown.

`device_page(conn, columns, query)` is called by `SqliteReader.device_page`. Keyset
rather than OFFSET, so the 2,000th page of 100,000 devices costs what the first does,
and every page's work is bounded whatever the filter matches:
- a state the controller records (Downloading, UpdateFailed, ...) is read from the
  progress table's (state, device_id) index in order from the cursor: exact, however
  rare, and no sort, however common;
- Current and Pending are mostly derived (a device never touched is Current or Pending
  without a progress row) and tags live in a JSON column, so no index answers them: such
  a page looks at no more than `SCAN_WINDOW` devices past the cursor and, when that
  window ends before the page is full, says where it stopped (`resume_after`).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.status import UpdateState
from reconciler.store.sqlconn import SqlConnection
from reconciler.store.state_sql import STATE_SQL

MAX_PAGE = 500  # a page is one query on the API's connection: keep it short
SCAN_WINDOW = 10_000  # device rows one unindexed filter may look at per page
_DERIVED = frozenset({UpdateState.CURRENT.value, UpdateState.PENDING.value})
_JOINS = """LEFT JOIN reports r ON r.device_id = d.device_id"""


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    collection_id: str | None = None
    state: str | None = None
    tag: tuple[str, str] | None = None  # (key, value): devices whose tag key has value
    after: str | None = None  # the last device id of the previous page
    limit: int = 50

    def __post_init__(self) -> None:
        if not 0 < self.limit <= MAX_PAGE:
            raise ValueError(f"page size must be 1..{MAX_PAGE}, not {self.limit}")
        if self.tag is not None and '"' in self.tag[0]:
            raise ValueError("a tag key to filter on cannot contain '\"'")


@dataclass(frozen=True, slots=True)
class PageSql:
    """The words of the page queries that differ between engines (the shapes do not)."""

    same: str  # null-safe equality
    state_sql: str  # the reference's firmware.state over d, r, p
    tag_sql: str  # the tag's value for key ?, compared with ?
    progress_index: str  # how the walk of a recorded state names its index ("": planner)


# A quoted label: any key but one holding '"' (refused above) is matched literally.
SQLITE = PageSql(same="IS", state_sql=STATE_SQL,
                 tag_sql="""json_extract(d.tags, '$."' || ? || '"') = ?""",
                 progress_index=" INDEXED BY progress_by_state_device")


@dataclass(frozen=True, slots=True)
class PageRows:
    rows: list[tuple[object, ...]]
    resume_after: str | None  # where the next page starts; None: nothing further


def device_page(conn: SqlConnection, columns: str, query: DeviceQuery,
                sql: PageSql = SQLITE) -> PageRows:
    """`columns` over `devices d`, `reports r` and `progress p`, one page of `query`;
    `sql`: the engine's words (SQLite's, or `store.pg.pages.POSTGRES`)."""
    if query.state is not None and query.state not in _DERIVED:
        return _by_progress_state(conn, columns, query, sql)
    bound = _window_end(conn, query) if query.state or query.tag else None
    where, args = _filters(query, sql)
    if bound is not None:
        where.append("d.device_id <= ?")
        args.append(bound)
    text = (f"SELECT {columns} FROM devices d {_JOINS} LEFT JOIN progress p "
            f"ON p.device_id = d.device_id{_where(where)} ORDER BY d.device_id LIMIT ?")
    rows = conn.execute(text, [*args, query.limit + 1]).fetchall()
    if len(rows) > query.limit:
        return PageRows(rows[:query.limit], str(rows[query.limit - 1][0]))
    return PageRows(rows, bound)  # the window ended first: resume past it


def _by_progress_state(conn: SqlConnection, columns: str, query: DeviceQuery,
                       sql: PageSql) -> PageRows:
    # The recorded state counts only while it is about the device's present target
    # (STATE_SQL's first branch); every other branch yields Current, Pending or NULL.
    # (state, device_id) is walked in order from the cursor: no sort, however common.
    where = ["p.state = ?", f"p.target_image_id {sql.same} d.target_image_id"]
    args: list[object] = [query.state]
    if query.after is not None:
        where.append("p.device_id > ?")
        args.append(query.after)
    narrower = _filters(DeviceQuery(collection_id=query.collection_id, tag=query.tag), sql)
    text = (f"SELECT {columns} FROM progress p{sql.progress_index} "
            f"JOIN devices d ON d.device_id = p.device_id {_JOINS}"
            f"{_where([*where, *narrower[0]])} ORDER BY p.device_id LIMIT ?")
    rows = conn.execute(text, [*args, *narrower[1], query.limit + 1]).fetchall()
    more = len(rows) > query.limit
    return PageRows(rows[:query.limit], str(rows[query.limit - 1][0]) if more else None)


def _window_end(conn: SqlConnection, query: DeviceQuery) -> str | None:
    """The last device id of the next SCAN_WINDOW past the cursor (an index-only walk);
    None when fewer remain, so the query may run to the end."""
    where: list[str] = []
    args: list[object] = []
    if query.collection_id is not None:
        where.append("collection_id = ?")
        args.append(query.collection_id)
    if query.after is not None:
        where.append("device_id > ?")
        args.append(query.after)
    row = conn.execute(f"SELECT device_id FROM devices{_where(where)} ORDER BY device_id "
                       f"LIMIT 1 OFFSET {SCAN_WINDOW - 1}", args).fetchone()
    return str(row[0]) if row else None


def _filters(query: DeviceQuery, sql: PageSql) -> tuple[list[str], list[object]]:
    where: list[str] = []
    args: list[object] = []
    if query.collection_id is not None:
        where.append("d.collection_id = ?")  # (collection_id, device_id) index: in order
        args.append(query.collection_id)
    if query.after is not None:
        where.append("d.device_id > ?")
        args.append(query.after)
    if query.state is not None:
        where.append(f"({sql.state_sql}) = ?")
        args.append(query.state)
    if query.tag is not None:
        where.append(sql.tag_sql)
        args.extend(query.tag)
    return where, args


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""
