"""/readyz of a node that lost its lease on a shared store says so (issue 13, item 4),
while the store it reads still answers; the same node ready again once it holds it."""

from __future__ import annotations

import httpx

from reconciler.api import create_app
from reconciler.store import SqliteReader


async def test_readyz_says_the_node_does_not_act_while_its_lease_is_lost(
        reader: SqliteReader) -> None:
    why: list[str | None] = ["store unreachable since 2026-11-30T00:00:00Z: not acting "
                             "on devices (lease 10s)"]
    app = create_app(reader, not_acting=lambda: why[0])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        lost = await http.get("/readyz")
        why[0] = None
        back = await http.get("/readyz")
    assert lost.status_code == 503 and "not acting on devices" in lost.json()["message"]
    assert back.status_code == 200 and back.json()["status"] == "ready"
