"""`make demo`: the whole loop on this repository's own example, in seconds (about 6 s here).

Clones the repository into a temporary directory, starts `fota serve` on the clone and
`fota simulate` for the example devices (they boot the oldest image), and prints each
device's state from the HTTP API as it changes until the fleet runs the collection's
target; then commits a target change in the clone, the way a merged pull request would,
and shows the fleet converging again. Both processes are stopped at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import git
import yaml

from reconciler.model.versions import version_key

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120.0


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(http: int, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


def _devices(http: int) -> dict[str, tuple[str, str, str]]:
    """deviceId -> (state, firmwareVersion, stateMessage) for every collection."""
    rows: dict[str, tuple[str, str, str]] = {}
    for coll in _get(http, "/collections")["collections"]:  # type: ignore[attr-defined]
        cid = coll["collectionId"]
        for dev in _get(http, f"/collections/{cid}/devices")["devices"]:  # type: ignore[attr-defined]
            fw = dev.get("firmware", {})
            rows[dev["deviceId"]] = (fw.get("state", "-"), fw.get("firmwareVersion", "?"),
                                     fw.get("stateMessage", ""))
    return rows


def _watch(http: int, version: str, started: float) -> bool:
    """Print every change of a device's state until all run `version` and are Current."""
    seen: dict[str, tuple[str, str, str]] = {}
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            rows = _devices(http)
        except OSError:
            rows = {}
        for device_id, row in sorted(rows.items()):
            if seen.get(device_id) != row:
                print(f"  [{time.monotonic() - started:5.1f}s] {device_id}  "
                      f"{row[0]:<12} running {row[1]:<7} {row[2][:60]}")
                seen[device_id] = row
        if rows and all(r[0] == "Current" and r[1] == version for r in rows.values()):
            return True
        time.sleep(0.25)
    return False


def _retarget(clone: Path, version: str) -> str:
    manifest = next(clone.glob("manifests/*/collection.yaml"))
    text = re.sub(r'(\n\s+target:\s*)"[^"]*"', rf'\g<1>"{version}"', manifest.read_text(),
                  count=1)
    manifest.write_text(text)
    repo = git.Repo(clone)
    repo.index.add([str(manifest.relative_to(clone))])
    actor = git.Actor("fota demo", "demo@example.invalid")
    return str(repo.index.commit(f"Roll the fleet to {version}", author=actor,
                                 committer=actor).hexsha)


def _target_of(clone: Path) -> str:
    manifest = next(clone.glob("manifests/*/collection.yaml"))
    found = re.search(r'\n\s+target:\s*"([^"]*)"', manifest.read_text())
    return found.group(1) if found else ""


def newest_other(images: list[dict[str, Any]], current: str) -> str:
    """The version of the newest image (by `created`, then by version) other than
    `current`; `current` when there is no other."""
    others = [i for i in images if str(i.get("version")) != current]
    if not others:
        return current
    newest = max(others, key=lambda i: (int(i.get("created", 0)),
                                        version_key(str(i.get("version")))))
    return str(newest["version"])


def _newest_other(clone: Path, current: str) -> str:
    text = next(clone.glob("manifests/*/images.yaml")).read_text()
    images = (yaml.safe_load(text) or {}).get("images") or []
    return newest_other(images, current)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="fota-demo-") as tmp:
        clone = Path(tmp) / "desired"
        with git.Repo.clone_from(str(ROOT), str(clone)) as cloned:
            branch = cloned.active_branch.name  # the demo commits to it: follow it
        coap, http = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
        base = [sys.executable, "-m", "reconciler.cli"]
        log = (Path(tmp) / "serve.log").open("w")
        serve = subprocess.Popen(
            [*base, "serve", "--repo", str(clone), "--branch", branch,
             "--state", f"{tmp}/state.db",
             "--coap", f"127.0.0.1:{coap}", "--http", f"127.0.0.1:{http}"],
            stderr=log, env={**os.environ, "FOTA_POLL_SOURCE": "1"})
        sim = subprocess.Popen([*base, "simulate", "--server", f"coap://127.0.0.1:{coap}",
                                "--repo", str(clone)], stdout=subprocess.DEVNULL)
        try:
            return _story(clone, http)
        finally:
            for proc in (sim, serve):
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            log.close()
            lines = len(Path(log.name).read_text().splitlines())
            print(f"\nserver log: {lines} lines (run `make run` to watch one live)")


def _story(clone: Path, http: int) -> int:
    started = time.monotonic()
    target = _target_of(clone)
    print(f"1. devices boot the oldest image; the collection's target is {target}")
    if not _watch(http, target, started):
        print("the fleet did not converge in time", file=sys.stderr)
        return 1
    newer = _newest_other(clone, target)
    sha = _retarget(clone, newer)
    print(f"\n2. commit {sha[:12]} changes the target to {newer} (a merged pull request)")
    if not _watch(http, newer, started):
        print("the fleet did not converge in time", file=sys.stderr)
        return 1
    print(f"\nall devices run {newer} and report Current, "
          f"{time.monotonic() - started:.1f}s after start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
