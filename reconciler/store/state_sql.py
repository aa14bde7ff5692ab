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
