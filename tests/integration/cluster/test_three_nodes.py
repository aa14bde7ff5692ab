"""Three `fota serve` nodes on one PostgreSQL database behind a UDP forwarder with source
affinity, a simulated fleet spread across them (issue 13, the end-to-end tests).

- a collection-wide maxConcurrent is never exceeded across the nodes, and each commit is
  applied once (by the leader), however many nodes follow it;
- kill -9 of a node mid-rollout: its devices re-register at the others (their next
  Update is refused there), which take them over from the database and finish the
  download at the device's block; no device gets Execute twice;
- a node cut off from the database stops acting on its devices within its lease and
  says so in /readyz.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from controller_harness import SIM_TIMING, DesiredRepo, specs
from forwarder import start_forwarder
from nodes import register_at, three_nodes, via_port
from tcp_cut import TcpCut

from bench.pgcluster import PgCluster
from reconciler.model.lwm2m import FirmwareState
from reconciler.simulator import Fault, Fleet

pytestmark = pytest.mark.slow
IN_FLIGHT = ("Initializing", "Downloading", "Downloaded", "Updating", "Completed")


def _in_flight(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM progress WHERE state = ANY(%s)",
                       (list(IN_FLIGHT),)).fetchone()
    return int(row[0]) if row else 0


def _owned_by(conn: psycopg.Connection, node: str) -> int:
    row = conn.execute("SELECT count(*) FROM registrations WHERE owner = %s",
                       (node,)).fetchone()
    return int(row[0]) if row else 0


def _generation(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'desired_generation'").fetchone()
    return int(row[0]) if row else 0


async def test_max_concurrent_holds_across_nodes_and_a_commit_is_applied_once(
        tmp_path: Path, pg_url: str) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=12, rollout={"maxConcurrent": 2},
                       image_size=24 * 512)
    forwarder = await start_forwarder([])  # its nodes once they listen
    public = f"coap://127.0.0.1:{forwarder.address[1]}"
    fleet = Fleet(public, specs(12), timing=replace(SIM_TIMING, slow_block_delay=0.01))
    peak = 0
    try:
        async with three_nodes(forwarder, repo.root, pg_url, public, tmp_path):
            with psycopg.connect(pg_url, autocommit=True) as conn:
                await fleet.start(wait_registered=True, timeout=60)
                owners = conn.execute("SELECT count(DISTINCT owner) FROM registrations"
                                      ).fetchone()
                before = _generation(conn)
                repo.set_target("2.0")
                done = asyncio.ensure_future(
                    fleet.wait_all(lambda d: d.version == "2.0", timeout=120))
                while not done.done():  # another process writes: nothing to await here
                    peak = max(peak, _in_flight(conn))
                    await asyncio.sleep(0.02)
                await done
                await asyncio.sleep(1.5)  # a follower's late apply would show by now
                applied = _generation(conn) - before
    finally:
        await fleet.stop(deregister=False)  # the nodes are gone: De-registering only waits out
        # Timing.deregister_timeout (3 s) for nothing
        forwarder.close()
    assert owners is not None and owners[0] >= 2  # the fleet was spread over the nodes
    assert 1 <= peak <= 2
    assert applied == 1
    assert [d.executes for d in fleet.devices()] == [1] * 12
    logs = [(tmp_path / f"{name}.log").read_text() for name in ("n1", "n2", "n3")]
    assert not any("deadlock detected" in log for log in logs)  # writers take one row first


async def test_kill_9_of_a_node_mid_rollout_moves_its_devices_without_a_second_execute(
        tmp_path: Path, pg_url: str) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=9, image_size=64 * 512)
    forwarder = await start_forwarder([])  # its nodes once they listen
    public = f"coap://127.0.0.1:{forwarder.address[1]}"
    devices = [replace(s, faults=frozenset({Fault.SLOW}), lifetime=30) for s in specs(9)]
    fleet = Fleet(public, devices, timing=replace(SIM_TIMING, slow_block_delay=0.05,
                                                  update_every=2.0))
    env = {"FOTA_MIN_DOWNLOAD_TIME": "60", "FOTA_LEASE": "3"}
    try:
        async with three_nodes(forwarder, repo.root, pg_url, public, tmp_path, env) as nodes:
            await fleet.start(wait_registered=True, timeout=60)
            repo.set_target("2.0")
            await fleet.wait_all(lambda d: d.state is FirmwareState.DOWNLOADING, timeout=60)
            with psycopg.connect(pg_url, autocommit=True) as conn:
                rows = conn.execute("SELECT owner, count(*) FROM registrations "
                                    "GROUP BY owner ORDER BY 2 DESC").fetchall()
                victim = next(n for n in nodes if n.name == rows[0][0])
                victim.proc.kill()
                forwarder.drop(victim.address)
                await fleet.wait_all(lambda d: d.version == "2.0", timeout=120)
                async with asyncio.timeout(30):  # each re-registers within its Update period
                    while _owned_by(conn, victim.name):
                        await asyncio.sleep(0.1)  # other processes write: nothing to await
    finally:
        await fleet.stop(deregister=False)  # the nodes are gone: De-registering only waits out
        # Timing.deregister_timeout (3 s) for nothing
        forwarder.close()
    assert rows[0][1] >= 1
    # every download went on at its block at another node; one Execute each
    assert [(d.downloads, d.executes) for d in fleet.devices()] == [(1, 1)] * 9


async def test_a_node_cut_off_from_the_database_stops_acting_and_says_so(
        tmp_path: Path, pg_url: str, pg_cluster: PgCluster) -> None:
    """n3 reaches the database through a link the test cuts: within its lease /readyz
    says it does not act, its devices (still talking to it) are not updated by it while
    the others' are; once the balancer's health check drops it, they re-register at the
    others and converge, each with one Execute. Each node names its own address in its
    package URIs here, so no download depends on the balancer's choice for the
    simulator's download socket (which has a port of its own)."""
    repo = DesiredRepo(tmp_path / "repo", count=9)
    forwarder = await start_forwarder([])  # its nodes once they listen
    public = f"coap://127.0.0.1:{forwarder.address[1]}"
    link = await TcpCut(pg_cluster.port).start()
    cut_url = via_port(pg_url, link.port)
    fleet = Fleet(public, [replace(s, lifetime=30) for s in specs(9)],
                  timing=replace(SIM_TIMING, update_every=2.0))
    env = {"FOTA_LEASE": "2"}
    try:
        async with three_nodes(forwarder, repo.root, pg_url, None, tmp_path, env,
                               states={"n3": cut_url}) as nodes:
            n3 = nodes[2]
            # n3 gets devices of its own whatever the hash says (9 devices spread by their
            # ports miss one of three nodes 2.6 % of the time), the rest go anywhere
            devices = fleet.devices()
            await register_at(forwarder, [n3], fleet, devices[:2])
            await register_at(forwarder, nodes, fleet, devices[2:])
            with psycopg.connect(pg_url, autocommit=True) as conn:
                theirs = {str(r[0]) for r in conn.execute(
                    "SELECT endpoint FROM registrations WHERE owner = 'n3'").fetchall()}
            assert theirs, "no device went to n3"
            await link.cut()
            cut_at = asyncio.get_running_loop().time()
            repo.set_target("2.0")
            # within its lease (2 s here), however slowly a cut-off store answers it
            while "not acting" not in str((status := await asyncio.to_thread(n3.readyz))[1]):
                assert asyncio.get_running_loop().time() - cut_at < 2 + 10, status
                await asyncio.sleep(0.2)  # another process: nothing to await
            assert status[0] == 503
            others = [d for d in fleet.devices() if d.endpoint not in theirs]
            await fleet.wait_all(lambda d: d.version == "2.0" or d.endpoint in theirs,
                                 timeout=60)
            assert all(fleet.device(e).version == "1.0" for e in theirs)
            ready = [(await asyncio.to_thread(n.readyz))[0] for n in nodes[:2]]
            assert ready == [200, 200]
            forwarder.drop(n3.address)  # the health check on /readyz
            await fleet.wait_all(lambda d: d.version == "2.0", timeout=90)
    finally:
        await fleet.stop(deregister=False)  # the nodes are gone: De-registering only waits out
        # Timing.deregister_timeout (3 s) for nothing
        forwarder.close()
        await link.close()
    assert others and [d.executes for d in fleet.devices()] == [1] * 9
    assert "lost its lease on the store" in (tmp_path / "n3.log").read_text()
