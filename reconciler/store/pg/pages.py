"""The dashboard's keyset pages of devices (`store.pages`) in PostgreSQL's SQL.

The same query shapes and bounds as SQLite's (`pages.device_page`: a recorded state is
walked on progress (state, device_id) from the cursor, a derived state or a tag looks
at no more than `SCAN_WINDOW` devices past it); only the words differ: `IS NOT DISTINCT
FROM` for `IS`, `->>` on the tags' JSON text for `json_extract`, and no index hint (the
planner picks the (state, device_id) index for the ordered, limited walk). Called by
`PgReader.device_page`.
"""

from __future__ import annotations

from reconciler.store.pages import _DERIVED, SCAN_WINDOW, DeviceQuery, PageRows, _where
from reconciler.store.pg.dialect import SAME, STATE_SQL
from reconciler.store.sqlconn import SqlConnection

_JOINS = "LEFT JOIN reports r ON r.device_id = d.device_id"


def device_page(conn: SqlConnection, columns: str, query: DeviceQuery) -> PageRows:
    """`columns` over `devices d`, `reports r` and `progress p`, one page of `query`."""
    if query.state is not None and query.state not in _DERIVED:
        return _by_progress_state(conn, columns, query)
    bound = _window_end(conn, query) if query.state or query.tag else None
    where, args = _filters(query)
    if bound is not None:
        where.append("d.device_id <= ?")
        args.append(bound)
    sql = (f"SELECT {columns} FROM devices d {_JOINS} LEFT JOIN progress p "
           f"ON p.device_id = d.device_id{_where(where)} ORDER BY d.device_id LIMIT ?")
    rows = conn.execute(sql, [*args, query.limit + 1]).fetchall()
    if len(rows) > query.limit:
        return PageRows(rows[:query.limit], str(rows[query.limit - 1][0]))
    return PageRows(rows, bound)


def _by_progress_state(conn: SqlConnection, columns: str, query: DeviceQuery) -> PageRows:
    where: list[str] = ["p.state = ?", f"p.target_image_id {SAME} d.target_image_id"]
    args: list[object] = [query.state]
    if query.after is not None:
        where.append("p.device_id > ?")
        args.append(query.after)
    narrower = _filters(DeviceQuery(collection_id=query.collection_id, tag=query.tag))
    sql = (f"SELECT {columns} FROM progress p "
           f"JOIN devices d ON d.device_id = p.device_id {_JOINS}"
           f"{_where([*where, *narrower[0]])} ORDER BY p.device_id LIMIT ?")
    rows = conn.execute(sql, [*args, *narrower[1], query.limit + 1]).fetchall()
    more = len(rows) > query.limit
    return PageRows(rows[:query.limit], str(rows[query.limit - 1][0]) if more else None)


def _window_end(conn: SqlConnection, query: DeviceQuery) -> str | None:
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


def _filters(query: DeviceQuery) -> tuple[list[str], list[object]]:
    where: list[str] = []
    args: list[object] = []
    if query.collection_id is not None:
        where.append("d.collection_id = ?")
        args.append(query.collection_id)
    if query.after is not None:
        where.append("d.device_id > ?")
        args.append(query.after)
    if query.state is not None:
        where.append(f"({STATE_SQL}) = ?")
        args.append(query.state)
    if query.tag is not None:
        where.append("(d.tags::json ->> ?) = ?")
        args.extend(query.tag)
    return where, args
