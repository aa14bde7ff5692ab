"""A device's stateMessage shows the stored backoff instant as absolute UTC time, the
same in the cached list, the device and /status/devices (issue 9 item 5)."""

from __future__ import annotations

import calendar
from typing import Any

import httpx

from reconciler.model.observed import DeviceProgress, with_next_attempt
from reconciler.model.status import UpdateState
from reconciler.store import SqliteStore

MESSAGE = "attempt 1 failed: download failed (Update Result 9); retry scheduled"


async def shown(client: httpx.AsyncClient, ref: Any) -> set[str]:
    """The device's stateMessage as each route shows it."""
    listed = (await client.get(f"/collections/{ref.cid}/devices")).json()["devices"]
    one = (await client.get(f"/collections/{ref.cid}/devices/{ref.device}")).json()
    status = (await client.get(f"/status/devices/{ref.device}")).json()
    return {next(d for d in listed if d["deviceId"] == ref.device)["firmware"]["stateMessage"],
            one["firmware"]["stateMessage"], status["firmware"]["stateMessage"]}


async def test_the_shown_message_follows_the_stored_next_attempt(
        client: httpx.AsyncClient, store: SqliteStore, ref: Any) -> None:
    at = calendar.timegm((2026, 11, 29, 20, 31, 5)) + 0.75
    store.put_progress(DeviceProgress(ref.device, ref.new, UpdateState.PENDING, MESSAGE,
                                      attempts=1, retries_left=2, next_attempt_at=at))
    expected = f"{MESSAGE} (next attempt at 2026-11-29T20:31:05Z)"
    assert with_next_attempt(MESSAGE, at) == expected  # SQL and Python render alike
    assert await shown(client, ref) == {expected}
    # a later backoff is shown at once: the cached bodies follow the store
    store.put_progress(DeviceProgress(ref.device, ref.new, UpdateState.TIMED_OUT, MESSAGE,
                                      attempts=2, retries_left=1, next_attempt_at=at + 3600))
    assert await shown(client, ref) == {f"{MESSAGE} (next attempt at 2026-11-29T21:31:05Z)"}
    # no backoff: the message alone
    store.put_progress(DeviceProgress(ref.device, ref.new, UpdateState.DOWNLOADING,
                                      "attempt 3: offering 2.0", attempts=3))
    assert await shown(client, ref) == {"attempt 3: offering 2.0"}
