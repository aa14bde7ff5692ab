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

    .venv/bin/python bench/cluster.py [--devices 1000] [--rounds 1] [--patience 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procs
from pgcluster import PgCluster, binaries
from rollout import rollout


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


async def engines(devices: int, rounds: int, patience: float) -> dict[str, Any]:
    bindir = binaries()
    if bindir is None:
        raise SystemExit("PostgreSQL's initdb and pg_ctl not found: apt-get install postgresql")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        cluster = PgCluster(bindir, fsync=True).start()
        try:
            runs: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgresql": []}
            for n in range(rounds):
                for engine in runs:
                    runs[engine].append(await one_rollout(engine, devices, Path(tmp),
                                                          cluster, n, patience))
        finally:
            cluster.stop()
    seconds = {e: [r["commit_to_all_current_s"] for r in rs] for e, rs in runs.items()}
    complete = all(s is not None for ss in seconds.values() for s in ss)
    medians = {e: statistics.median(ss) for e, ss in seconds.items()} if complete else {}
    return {"devices": devices, "image_bytes": runs["sqlite"][0]["image_bytes"],
            "rounds": rounds, "runs": runs,
            "sqlite_s": medians.get("sqlite"), "postgresql_s": medians.get("postgresql"),
            "ratio": round(medians["postgresql"] / medians["sqlite"], 2) if medians else None,
            "goal_ratio": 1.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--patience", type=float, default=300.0,
                        help="seconds a rollout may take before it is reported as it stands")
    args = parser.parse_args()
    result = {"engines": asyncio.run(engines(args.devices, args.rounds, args.patience))}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
