"""Benchmark of fota-gitops on PostgreSQL (issue 13), printed as one JSON object.

Part 1, `engines`: one `fota serve` on PostgreSQL against one on SQLite, the same
rollout as `bench/rollout.py` (a `fota simulate` fleet of 1,000 devices, a 64 KiB
image, 512-byte blocks, every device at once): seconds from the commit that changes the
target to every device Current, on each engine in this one run, and their `ratio`,
PostgreSQL / SQLite (goal <= 1.5). With `--rounds N` the engines alternate N times and
the medians are compared (the machine's load then weighs on both alike). The database
is a throwaway cluster this script starts with Debian's initdb and pg_ctl (as the tests
do: bench/pgcluster.py), with fsync on as a production server has it, on a unix socket;
each run gets a database of its own.

Part 2, `nodes`: three `fota serve` nodes (`--node-id n1..n3`) on one database holding
`--registrations` (300,000) registrations in all, a third registered at each node
(queue-mode endpoints of `rollout.QueueRegistrar`, 64 sockets and 256 Registers in flight
per node, all nodes at once; the collection's firmware management is disabled, so the
figures are those of holding registrations): registrations per second, where the nodes'
writer sessions spent that time (`writer_waits`, sampled from pg_stat_activity), each
node's RSS once all are registered, and the database's size (`pg_database_size`) and rows.

Part 3, `failover`: then n3 is killed (SIGKILL) and its devices register again at n1 and
n2 (half each) at once, as devices whose next Update or retry falls within 10 s of the
kill do: seconds from the kill to the moment the database shows none of them owned by
n3, and Registers per second meanwhile. Parts 2 and 3 share one run (`--parts nodes`).

    .venv/bin/python bench/cluster.py [--parts engines,nodes] [--devices 1000]
        [--rounds 1] [--patience 300] [--registrations 300000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import procs
import psycopg
from pgcluster import PgCluster, binaries
from rollout import QueueRegistrar, Server, make_repo, rollout

NODES = ("n1", "n2", "n3")
# Queue-mode endpoints answer no device management (only ever "asleep" to the
# controller); a lease long enough for the leader to apply 300,000 devices before the
# followers stop waiting for it (3 leases).
NODE_ENV = {"FOTA_AWAKE_WINDOW": "0.001", "FOTA_LEASE": "60"}


def note(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} cluster bench: {text}", file=sys.stderr, flush=True)


async def one_rollout(engine: str, devices: int, tmp: Path, cluster: PgCluster,
                      run: int, patience: float) -> dict[str, Any]:
    """The rollout on a fresh SQLite file or a fresh database; its figures and the CPU
    seconds of this script's children (server and simulator) it took."""
    work = tmp / f"{engine}-{run}"
    work.mkdir()
    state: Path | str = work / "state.db"
    if engine == "postgresql":
        state = cluster.new_database(f"bench{run}")
    cpu = procs.children_cpu_s()
    note(f"{engine}: rollout {run} of {devices} devices")
    result = await rollout(devices, work, state=state,
                           env={"FOTA_CACHE_DIR": str(work / "cache")}, patience=patience)
    return {**result, "children_cpu_s": round(procs.children_cpu_s() - cpu, 1)}


@contextmanager
def postgres() -> Iterator[tuple[Path, PgCluster]]:
    """A scratch directory and a throwaway cluster (fsync on, as in production), both
    gone afterwards."""
    bindir = binaries()
    if bindir is None:
        raise SystemExit("PostgreSQL's initdb and pg_ctl not found: apt-get install postgresql")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        cluster = PgCluster(bindir, port=procs.free_tcp_port(), fsync=True).start()
        try:
            yield Path(tmp), cluster
        finally:
            cluster.stop()


async def engines(devices: int, rounds: int, patience: float) -> dict[str, Any]:
    with postgres() as (tmp, cluster):
        runs: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgresql": []}
        for n in range(rounds):
            for engine in runs:
                runs[engine].append(await one_rollout(engine, devices, tmp, cluster, n,
                                                      patience))
    seconds = {e: [r["commit_to_all_current_s"] for r in rs] for e, rs in runs.items()}
    complete = all(s is not None for ss in seconds.values() for s in ss)
    medians = {e: statistics.median(ss) for e, ss in seconds.items()} if complete else {}
    return {"devices": devices, "image_bytes": runs["sqlite"][0]["image_bytes"],
            "rounds": rounds, "runs": runs,
            "sqlite_s": medians.get("sqlite"), "postgresql_s": medians.get("postgresql"),
            "ratio": round(medians["postgresql"] / medians["sqlite"], 2) if medians else None,
            "goal_ratio": 1.5}


async def nodes(registrations: int) -> dict[str, Any]:
    """Parts 2 and 3 in one run (see the module's docstring)."""
    with postgres() as (tmp, cluster):
        return await _three_nodes(tmp, cluster.new_database("nodes"), registrations)


async def _three_nodes(tmp: Path, url: str, count: int) -> dict[str, Any]:
    endpoints = [f"reg-{i:06d}" for i in range(count)]
    repo = make_repo(tmp / "repo", endpoints)
    manifest = tmp / "repo" / "manifests" / "bench" / "collection.yaml"
    manifest.write_text(manifest.read_text().replace("management: collection",
                                                     "management: disabled"))
    repo.git.add(A=True)
    repo.git.commit("-q", "-m", "firmware management disabled: registrations only")
    servers: dict[str, Node] = {}
    try:
        started = time.time()
        for name in NODES:  # one leads and applies the revision; the others follow
            servers[name] = Node(name, tmp, url)
        await asyncio.gather(*(server.start() for server in servers.values()))
        note(f"three nodes ready in {time.time() - started:.0f}s; registering {count}")
        shares = {name: endpoints[n::len(NODES)] for n, name in enumerate(NODES)}
        registered = await _register(servers, shares, url)
        rss = {name: round(server.rss_mb(), 1) for name, server in servers.items()}
        with psycopg.connect(url, autocommit=True) as conn:
            size = _one(conn, "SELECT pg_database_size(current_database())")
            rows = _one(conn, "SELECT count(*) FROM registrations")
            per_node: dict[str, int] = dict(conn.execute(
                "SELECT owner, count(*) FROM registrations GROUP BY owner ORDER BY owner"
            ).fetchall())
            note("killing n3; its devices register again at n1 and n2")
            failover = await _failover(servers, shares["n3"], conn)
    finally:
        for server in servers.values():
            if server.proc.returncode is None:
                await server.stop()
    return {"registrations": count, "registered": registered, "rss_mb_per_node": rss,
            "db_bytes": size, "db_mb": round(size / 2**20, 1), "db_registration_rows": rows,
            "owned_per_node": per_node, "failover": failover}


async def _register(servers: dict[str, Node], shares: dict[str, list[str]], url: str
                    ) -> dict[str, Any]:
    registrars = [QueueRegistrar(("127.0.0.1", servers[name].port), endpoints,
                                 sockets=64, in_flight=256)
                  for name, endpoints in shares.items()]
    for registrar in registrars:
        await registrar.open()
    started, done = time.perf_counter(), asyncio.Event()
    sampler = asyncio.create_task(_writer_waits(url, done))
    try:
        stats = await asyncio.gather(*(r.register_all() for r in registrars))
    finally:
        done.set()
        for registrar in registrars:
            registrar.close()
    seconds = time.perf_counter() - started
    ok = sum(s.ok for s in stats)
    return {"ok": ok, "failed": sum(s.failed for s in stats), "seconds": round(seconds, 1),
            "per_second": round(ok / seconds), "writer_waits": await sampler}


async def _writer_waits(url: str, done: asyncio.Event) -> dict[str, float]:
    """Where the nodes' writer sessions spend the registering, from pg_stat_activity
    every 20 ms: share of samples per "state/wait event" (idle/ClientRead: waiting for
    its node; idle in transaction: a node between two round trips of one transaction,
    its locks held; Lock/...: waiting for another transaction's lock)."""
    seen: Counter[str] = Counter()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while not done.is_set():
            rows = await (await conn.execute(
                "SELECT state, COALESCE(wait_event_type || '/' || wait_event, 'cpu') "
                "FROM pg_stat_activity WHERE application_name = 'fota-writer'")).fetchall()
            for state, event in rows:
                seen[f"{state}/{event}"] += 1
            await asyncio.sleep(0.02)  # a sampling period: nothing to await
    total = sum(seen.values()) or 1
    return {key: round(n / total, 3) for key, n in seen.most_common()}


async def _failover(servers: dict[str, Node], theirs: list[str],
                    conn: psycopg.Connection) -> dict[str, Any]:
    victim = servers["n3"]
    victim.proc.kill()
    killed = time.perf_counter()
    await victim.proc.wait()
    registrars = [QueueRegistrar(("127.0.0.1", servers[name].port), theirs[n::2],
                                 sockets=64, in_flight=256)
                  for n, name in enumerate(("n1", "n2"))]
    for registrar in registrars:
        await registrar.open()
    try:
        stats = await asyncio.gather(*(r.register_all() for r in registrars))
        while (left := _one(conn, "SELECT count(*) FROM registrations WHERE owner = 'n3'")):
            note(f"{left} devices still owned by n3")
            await asyncio.sleep(0.5)  # another process writes: nothing to await
    finally:
        for registrar in registrars:
            registrar.close()
    moved_s = time.perf_counter() - killed
    ok = sum(s.ok for s in stats)
    return {"devices": len(theirs), "registered_again": ok,
            "failed": sum(s.failed for s in stats),
            "kill_to_all_owned_elsewhere_s": round(moved_s, 1),
            "registers_per_second": round(ok / moved_s)}


class Node(Server):
    """One `fota serve --node-id NAME` on the shared database, on a port of its own."""

    def __init__(self, name: str, tmp: Path, url: str) -> None:
        self.port = procs.free_udp_port()
        super().__init__(tmp / "repo", url, self.port,
                         {**NODE_ENV, "FOTA_CACHE_DIR": str(tmp / f"cache-{name}")})
        self.args += ["--node-id", name]

    async def start(self) -> None:
        """As `Server.start`, but a node may wait 3 leases for the leader's apply."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stderr=asyncio.subprocess.PIPE, env=self.env)
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda line: "fota serve ready" in line, 1, 900)


def _one(conn: psycopg.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="engines,nodes")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--patience", type=float, default=300.0,
                        help="seconds a rollout may take before it is reported as it stands")
    parser.add_argument("--registrations", type=int, default=300_000)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {}
    if "engines" in parts:
        result["engines"] = asyncio.run(engines(args.devices, args.rounds, args.patience))
    if "nodes" in parts:
        result["nodes"] = asyncio.run(nodes(args.registrations))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
