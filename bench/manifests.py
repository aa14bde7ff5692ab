"""Desired-state loading at fleet scale: 100,000 devices and 10 images in one git repo.

Measures (median of REPEAT runs) a cold load and validation through `GitSource` with an
empty cache, a restart with the on-disk parse cache, and applying a commit that changes
one collection's target (and, for reference, one device's target in a 5,000-line file),
plus `fota validate`'s directory load. Goals on a 2-core machine:
cold <= 5 s, restart <= 1 s, one-line commit <= 0.2 s. Prints one JSON object.
Run: .venv/bin/python bench/manifests.py [DEVICES]
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import git

from reconciler.model.ids import encode_base24
from reconciler.sources import GitSource, validate_tree

REPEAT = 3
IMAGES = 10
PER_FILE = 5_000


def write_repo(root: Path, devices: int) -> git.Repo:
    repo = git.Repo.init(root, initial_branch="main")
    base = root / "manifests" / "fleet"
    (base / "devices").mkdir(parents=True)
    (root / "images" / "fleet").mkdir(parents=True)
    lines = ["images:"]
    for n in range(IMAGES):
        data = f"firmware {n} ".encode() * 200
        name = f"zephyr-1.{n}.0.signed.bin"
        (root / "images" / "fleet" / name).write_bytes(data)
        lines += [f"  - imageId: {encode_base24(10**12 + n)}", f'    version: "1.{n}.0"',
                  f"    path: images/fleet/{name}",
                  f"    sha256: {hashlib.sha256(data).hexdigest()}",
                  f"    length: {len(data)}", "    created: 1700000000000"]
    (base / "images.yaml").write_text("\n".join(lines) + "\n")
    write_collection(base, "1.0.0")
    for start in range(0, devices, PER_FILE):
        rows = ["devices:"]
        for n in range(start, min(start + PER_FILE, devices)):
            entry = {"deviceId": encode_base24(10**13 + n),
                     "endpoint": f"urn:imei:35{n:013d}", "target": f"1.{n % IMAGES}.0",
                     "tags": {"site": f"s{n % 7}"}}
            rows.append("- " + json.dumps(entry))
        (base / "devices" / f"{start // PER_FILE:04d}.yaml").write_text("\n".join(rows) + "\n")
    repo.git.add("-A")
    repo.index.commit("fleet")
    return repo


def write_collection(base: Path, target: str) -> None:
    text = f"collectionId: {encode_base24(10**11)}\nname: fleet\n"
    text += f"firmware:\n  management: collection\n  target: \"{target}\"\n"
    (base / "collection.yaml").write_text(text)


def timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    devices = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        repo = write_repo(root, devices)
        cold, restart, commit = [], [], []
        for n in range(REPEAT):
            cache = Path(tmp) / f"cache{n}"
            seconds, state = timed(GitSource(str(root), "main", cache_dir=cache).sync)
            assert state is not None and len(state.devices) == devices  # type: ignore[attr-defined]
            cold.append(seconds)
        for _ in range(REPEAT):
            seconds, state = timed(GitSource(str(root), "main", cache_dir=cache).sync)
            assert state is not None
            restart.append(seconds)
        source = GitSource(str(root), "main", cache_dir=cache)
        source.sync()
        for n in range(REPEAT):
            write_collection(root / "manifests" / "fleet", f"1.{n + 1}.0")
            repo.index.add(["manifests/fleet/collection.yaml"])
            repo.index.commit(f"target 1.{n + 1}.0")
            before = source.cache.parse_count
            seconds, state = timed(source.sync)
            assert state is not None and source.cache.parse_count == before + 1
            commit.append(seconds)
        device = []
        for n in range(REPEAT):
            path = root / "manifests" / "fleet" / "devices" / "0000.yaml"
            text = path.read_text()
            old = f'"target": "1.{n % IMAGES}.0"'
            path.write_text(text.replace(old, f'"target": "1.{(n + 5) % IMAGES}.0"', 1))
            repo.index.add(["manifests/fleet/devices/0000.yaml"])
            repo.index.commit(f"one device, take {n}")
            seconds, state = timed(source.sync)
            assert state is not None
            device.append(seconds)
        directory, problems = timed(lambda: validate_tree(root))
        assert problems == []
        repo.close()
    print(json.dumps({
        "devices": devices, "images": IMAGES, "device_files": -(-devices // PER_FILE),
        "cold_load_s": round(statistics.median(cold), 3),
        "restart_with_cache_s": round(statistics.median(restart), 3),
        "one_line_commit_s": round(statistics.median(commit), 4),
        "one_device_commit_s": round(statistics.median(device), 4),
        "validate_directory_s": round(directory, 3),
        "runs": {"cold": [round(x, 3) for x in cold], "restart": [round(x, 3) for x in restart],
                 "commit": [round(x, 4) for x in commit],
                 "device": [round(x, 4) for x in device]},
        "goals_s": {"cold": 5.0, "restart": 1.0, "one_line_commit": 0.2},
    }))


if __name__ == "__main__":
    main()
