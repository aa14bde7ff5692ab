"""The reference's `firmware.state` of a device as one SQL expression, shared by every
query that shows or counts it (reader views, JSON lists, the tallies' triggers).

Over `devices d LEFT JOIN progress p`: the controller's progress when it is about the
device's present target; otherwise `Current` when the device reports its target,
`Pending` when it does not, and NULL (absent) when nothing is targeted (disabled scope).
"""


def state_expr(state: str, progress_target: str, target: str, current: str,
               same: str = "IS") -> str:
    """The state over any four column expressions: the triggers of `tallies.py` evaluate
    it on OLD and NEW rows, the queries on `p` and `d`. `same` is the engine's null-safe
    equality (SQLite's `IS`, PostgreSQL's `IS NOT DISTINCT FROM`: `store.pg.dialect`)."""
    return f"""CASE
    WHEN {state} IS NOT NULL AND {progress_target} {same} {target} THEN {state}
    WHEN {target} IS NULL THEN NULL
    WHEN {current} {same} {target} THEN 'Current'
    ELSE 'Pending' END"""


STATE_SQL = state_expr("p.state", "p.target_image_id", "d.target_image_id",
                       "d.current_image_id")

# The device's `firmware.stateMessage`: the progress message when it is about the present
# target, with the backoff's end as an absolute UTC time (never stale in a cached body);
# the same text as `reconciler.model.observed.with_next_attempt`.
MESSAGE_SQL = """CASE WHEN p.target_image_id IS d.target_image_id AND p.message != ''
    THEN p.message || CASE WHEN p.next_attempt_at IS NULL THEN ''
        ELSE ' (next attempt at ' || strftime('%Y-%m-%dT%H:%M:%SZ', p.next_attempt_at,
                                              'unixepoch') || ')' END END"""
