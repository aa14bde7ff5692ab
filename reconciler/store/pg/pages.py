"""The dashboard's keyset pages of devices (`store.pages`) in PostgreSQL's words.

The same query shapes and bounds as SQLite's (`pages.device_page`); only the words
differ: `IS NOT DISTINCT FROM` for `IS`, `->>` on the tags' JSON text for
`json_extract`, and no index hint (the planner picks the (state, device_id) index for the
ordered, limited walk). Used by `PgReader.device_page`.
"""

from __future__ import annotations

from reconciler.store.pages import PageSql
from reconciler.store.pg.dialect import SAME, STATE_SQL

POSTGRES = PageSql(same=SAME, state_sql=STATE_SQL, tag_sql="(d.tags::json ->> ?) = ?",
                   progress_index="")
