"""Rollout guards across nodes (issue 13 item 2): wave membership and the failure
threshold count every node's devices, and each node's API and /metrics say the same.

Two canaries registered at two different nodes both fail: neither node alone reaches the
collection's failureThreshold of 2, together they do. The rollout halts, the devices of
the next wave (registered at the third node, which updated none of the canaries) never
start, and /status and /metrics of every node report the halt. Without the other
nodes' records each node would count one failure at most, and n3 none: no halt, and a
canary wave that never finishes there.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from controller_harness import SIM_TIMING, DesiredRepo, specs
from forwarder import start_forwarder
from nodes import Node, register_at, three_nodes

from reconciler.simulator import Fault, Fleet

pytestmark = pytest.mark.slow
CANARIES = 2


def _halted(node: Node) -> tuple[bool, str, int, str]:
    """(halted, reason, failed) of the collection's rollout as this node's /status shows
    it, and its /metrics line for the halt (blocking: call in a thread)."""
    rollout = node.get_json("/status")["collections"][0]["rollout"]
    metrics = node.get_text("/metrics").splitlines()
    line = next((m for m in metrics if m.startswith("fota_rollout_halted{")), "")
    return (bool(rollout.get("halted")), str(rollout.get("reason")),
            int(rollout.get("failed") or 0), line)


async def test_failures_on_two_nodes_together_halt_the_rollout_on_every_node(
        tmp_path: Path, pg_url: str) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=8, rollout={
        "failureThreshold": 2, "waves": [{"name": "canary", "tags": {"ring": "canary"}}]},
        device_tags={n: {"ring": "canary"} for n in range(CANARIES)})
    forwarder = await start_forwarder([])
    public = f"coap://127.0.0.1:{forwarder.address[1]}"
    devices = specs(8)
    devices[:CANARIES] = [replace(s, faults=frozenset({Fault.UNSUPPORTED}))
                          for s in devices[:CANARIES]]
    fleet = Fleet(public, devices, timing=SIM_TIMING)
    canaries, rest = fleet.devices()[:CANARIES], fleet.devices()[CANARIES:]
    try:
        async with three_nodes(forwarder, repo.root, pg_url, public, tmp_path) as nodes:
            # canary 0 registers at n1, canary 1 at n2, the rest at n3
            for node, part in zip(nodes, (canaries[:1], canaries[1:], rest), strict=True):
                await register_at(forwarder, [node], fleet, part)
            repo.set_target("2.0")
            async with asyncio.timeout(90):
                while True:
                    seen = await asyncio.gather(*(asyncio.to_thread(_halted, n)
                                                  for n in nodes))
                    if all(halted for halted, *_ in seen):
                        break
                    await asyncio.sleep(0.2)  # other processes write: nothing to await
    finally:
        await fleet.stop(deregister=False)  # the nodes are gone: De-registering only waits out
        # Timing.deregister_timeout (3 s) for nothing
        forwarder.close()
    assert [d.executes for d in canaries] == [0, 0]
    assert all("(threshold 2)" in reason and failed == 2 and line.endswith(" 1.0")
               for _, reason, failed, line in seen), seen
    assert [(d.version, d.downloads, d.executes) for d in rest] == [("1.0", 0, 0)] * 6
