"""The reference's `firmware.state` of a device as one SQL expression, shared by every
query that shows or counts it (reader views, JSON lists, per-collection counts).

Over `devices d LEFT JOIN progress p`: the controller's progress when it is about the
device's present target; otherwise `Current` when the device reports its target,
`Pending` when it does not, and NULL (absent) when nothing is targeted (disabled scope).
"""

STATE_SQL = """CASE
    WHEN p.state IS NOT NULL AND p.target_image_id IS d.target_image_id THEN p.state
    WHEN d.target_image_id IS NULL THEN NULL
    WHEN d.current_image_id IS d.target_image_id THEN 'Current'
    ELSE 'Pending' END"""

# The device's `firmware.stateMessage`: the progress message when it is about the present
# target, with the backoff's end as an absolute UTC time (never stale in a cached body);
# the same text as `reconciler.model.observed.with_next_attempt`.
MESSAGE_SQL = """CASE WHEN p.target_image_id IS d.target_image_id AND p.message != ''
    THEN p.message || CASE WHEN p.next_attempt_at IS NULL THEN ''
        ELSE ' (next attempt at ' || strftime('%Y-%m-%dT%H:%M:%SZ', p.next_attempt_at,
                                              'unixepoch') || ')' END END"""
