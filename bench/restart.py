"""Restart benchmark, printed as one JSON object.

`fota serve` and `fota simulate` (1,000 devices, a 256 KiB image, 1 KiB blocks unless
told otherwise) as two processes on loopback, twice: a rollout left alone, and the same
rollout during which `fota serve` is killed with SIGKILL `--kills` times (3: once a
quarter, half and three quarters of the devices run the target) and started again at
once on the same state file. Reported:

- `slowdown`: commit -> every device Current with kills, divided by the same without
  (goal <= 1.3);
- `retries_spent_by_restarts`: retries spent in the killed rollout beyond those of the
  undisturbed one, from the progress rows (goal 0);
- `blocks_downloaded_twice_share`: blocks the fleet received beyond one download per
  device, as a share of one download per device (goal < 5 %); with `--delivery push`
  (push-only devices, `fota simulate --push`: the server writes the image to /5/0/0 in
  1 KiB Block1 blocks) the Block1 blocks the devices received, a block received again
  counted again: the blocks a restart made the server send twice;
- `push_positions_at_kills` (push): the push positions the state file held at each kill
  (None: a server without them), what a restarted server resumes pushes from;
- `restart_to_first_block_s` (per kill): from the SIGKILL until the new process answers
  2.05 to a Block2 GET of a persisted offer (the bench asks, every 20 ms, for block 1 of
  the newest offer of a device still downloading; None when none was, as with pushes), beside
  `restart_to_ready_s`: the devices resume at their first RFC 7252 retransmission (2-3 s
  after the kill) only if it is short.

Progress is read from the server's log lines (a device whose Current record a SIGKILL
committed without its log line is taken from the state file after a quiet second:
`current_seen_only_in_state`), the blocks from `fota simulate`'s final line. Reuses the
process handling of `bench/rollout.py`.

    .venv/bin/python bench/restart.py [--devices 1000] [--image-kib 256]
        [--block-size 1024] [--kills 3] [--delivery pull|push]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import socket
import sqlite3
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procs
from rollout import Server, make_repo, set_target

CURRENT = re.compile(r"\((sim-\d+)\): .*-> Current: running 2\.0")
RESTORED = re.compile(r"restored (\d+) registrations and (\d+) firmware offers")
PATIENCE = 900.0  # seconds for one rollout before it is reported as it stands
MAX_RETRIES = 3  # the engine's default budget per device and target
PUSH_BLOCK = 1024  # the server's Block1 size for a push (the simulator takes it)


def note(text: str) -> None:
    """Progress on stderr: a run takes minutes."""
    print(f"{time.strftime('%H:%M:%S')} restart bench: {text}", file=sys.stderr, flush=True)


class Progress:
    """Devices seen Current on the target across every server process of one run; each
    log line is looked at once (rescanning the whole log per line costs CPU the
    server and the simulator are short of)."""

    def __init__(self, since: float, state: Path) -> None:
        self.since, self.state = since, state
        self.current: dict[str, float] = {}  # endpoint -> when first logged Current
        self.only_in_state = 0  # Current in the state file, its log line never written
        self._seen: dict[int, int] = {}  # id(server) -> lines scanned

    def scan(self, server: Server) -> None:
        start = self._seen.get(id(server), 0)
        for at, line in server.lines[start:]:
            match = CURRENT.search(line)
            if match and at >= self.since:
                self.current.setdefault(match.group(1), at)
        self._seen[id(server)] = len(server.lines)

    async def until(self, server: Server, count: int, deadline: float) -> bool:
        """Until `count` devices are Current (True) or the deadline passes (False)."""
        while True:
            self.scan(server)
            if len(self.current) >= count:
                return True
            if server.proc.returncode is not None:
                raise RuntimeError("fota serve exited:\n" + "".join(
                    line for _, line in server.lines[-20:]))
            left = deadline - time.time()
            if left <= 0:
                return False
            server._event.clear()
            try:
                await asyncio.wait_for(server._event.wait(), min(left, 1.0))
            except TimeoutError:  # a quiet second: what the state file says
                self.scan_state()

    def scan_state(self) -> None:
        """Devices the state file has Current on their target since the commit with no
        log line: a SIGKILL that fell between a record's commit and its log line (no
        later process logs that device again). Counted as Current when found."""
        with sqlite3.connect(f"file:{self.state}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT d.endpoint FROM progress p JOIN devices d ON d.device_id = "
                "p.device_id WHERE p.state = 'Current' AND p.target_image_id = "
                "d.target_image_id AND p.updated_at >= ?", (self.since,)).fetchall()
        for (endpoint,) in rows:
            if endpoint not in self.current:
                self.current[endpoint] = time.time()
                self.only_in_state += 1


async def rollout(devices: int, tmp: Path, image_size: int, block: int,
                  kills: int, push: bool = False) -> dict[str, Any]:
    endpoints = [f"sim-{i:05d}" for i in range(devices)]
    repo = make_repo(tmp / "repo", endpoints, image_size)
    port, state = procs.free_udp_port(), tmp / "state.db"
    server = Server(tmp / "repo", state, port, {})
    await server.start()
    servers = [server]
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", "simulate", "--server",
        f"coap://127.0.0.1:{port}", "--repo", str(tmp / "repo"), "--count", str(devices),
        "--version", "1.0", "--block-size", str(block), *(["--push"] if push else []),
        stdout=asyncio.subprocess.PIPE)
    restarts: list[float] = []
    first_blocks: list[float | None] = []
    positions: list[int | None] = []
    cpu = procs.children_cpu_s()
    try:
        await server.wait_for(lambda line: "-> Current: running 1.0" in line, devices, 300)
        committed = set_target(repo, "2.0")
        note(f"{devices} devices on 1.0; target 2.0 committed ({kills} kills to come)")
        progress = Progress(committed, state)
        deadline = committed + PATIENCE
        for k in range(kills):
            if not await progress.until(server, math.ceil(devices * (k + 1) / (kills + 1)),
                                        deadline):
                break
            killed = server
            server, took, first, held = await _kill_and_restart(server, tmp, state, port)
            # the killed process's last lines (read to its end after the kill): devices
            # it saw Current just before are in no later process's log
            progress.scan(killed)
            servers.append(server)
            restarts.append(took)
            first_blocks.append(first)
            positions.append(held)
            note(f"killed with {len(progress.current)} Current, {held} push positions "
                 f"stored; first block answered after {first}s, ready again in {took:.1f}s")
        await progress.until(server, devices, deadline)
        note(f"{len(progress.current)} of {devices} Current after "
             f"{time.time() - committed:.1f}s")
    finally:
        blocks = await _stop_simulator(sim, "pushed" if push else "blocks")
        await server.stop()
    for each in servers:
        progress.scan(each)
    times = sorted(at - committed for at in progress.current.values())
    per_device = math.ceil(image_size / (PUSH_BLOCK if push else block))
    restored = [RESTORED.search(line) for s in servers[1:] for _, line in s.lines]
    return {
        "current": len(times), "never_current": devices - len(times),
        "commit_to_all_current_s": round(times[-1], 2) if len(times) == devices else None,
        "kills": len(restarts), "restart_to_ready_s": [round(t, 2) for t in restarts],
        "current_seen_only_in_state": progress.only_in_state,
        "restart_to_first_block_s": first_blocks,
        **({"push_positions_at_kills": positions} if push else {}),
        "restored": [[int(m.group(1)), int(m.group(2))] for m in restored if m],
        "retries_spent": _retries_spent(state),
        "blocks": blocks, "blocks_needed": devices * per_device,
        "children_cpu_s": round(procs.children_cpu_s() - cpu, 1),  # servers and simulator
    }


async def _kill_and_restart(server: Server, tmp: Path, state: Path, port: int
                            ) -> tuple[Server, float, float | None, int | None]:
    """SIGKILL, start again on the same state: (the new server, seconds from the kill to
    its ready line, seconds to its first 2.05 for a persisted offer's block or None, the
    push positions the killed server left in the state file or None)."""
    server.proc.kill()
    await server.proc.wait()
    await server._reader
    killed = time.time()
    token = _newest_offer(state)
    held = _push_positions(state)
    fresh = Server(tmp / "repo", state, port, {})
    probe = asyncio.create_task(_first_block(port, token, killed)) if token else None
    await fresh.start()
    took = time.time() - killed
    block = None
    if probe is not None:
        with contextlib.suppress(TimeoutError):
            block = await asyncio.wait_for(probe, 10)
    return fresh, took, block, held


def _push_positions(state: Path) -> int | None:
    """The push positions in the state file (None: a server without them)."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM push_positions").fetchone()[0])
        except sqlite3.OperationalError:  # no such table
            return None


def _newest_offer(state: Path) -> str | None:
    """The newest offer of a device the state file says is downloading it: one the
    restarted server restores (None when no download was running)."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT o.token FROM offers o JOIN devices d ON d.endpoint = o.endpoint "
            "JOIN progress p ON p.device_id = d.device_id AND p.target_image_id = o.image_id "
            "WHERE p.state = 'Downloading' ORDER BY o.expires_at DESC LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def _block2_get(token: str, mid: int) -> bytes:
    """A CON GET of /fw/<token> for block 1 of 1024 bytes (a resumed download)."""
    path = token.encode()
    length = bytes([len(path)]) if len(path) < 13 else bytes([0x0D, len(path) - 13])
    options = bytes([0xB2]) + b"fw" + length + path + bytes([0xC1, 0x16])  # Uri-Path x2, Block2
    return struct.pack("!BBHB", 0x41, 0x01, mid, 0x7B) + options


async def _first_block(port: int, token: str, since: float) -> float | None:
    """Seconds from `since` to the first 2.05 answer to the block request, asked every
    20 ms from the moment the old process is gone (None: none within 60 s)."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        mid = 0
        while time.time() - since < 60:
            mid = (mid + 1) & 0xFFFF
            sock.send(_block2_get(token, mid))
            try:
                answer = await asyncio.wait_for(loop.sock_recv(sock, 2048), 0.02)
            except TimeoutError:
                continue
            except ConnectionRefusedError:  # nothing listens yet
                await asyncio.sleep(0.02)
                continue
            if len(answer) > 1 and answer[1] == 0x45:  # 2.05 Content
                return round(time.time() - since, 2)
    return None


async def _stop_simulator(sim: asyncio.subprocess.Process, key: str) -> int | None:
    """Stop `fota simulate` and read the blocks its fleet received from its last line
    (`key`: "blocks" pulled, "pushed")."""
    sim.terminate()
    try:
        out, _ = await asyncio.wait_for(sim.communicate(), 60)
    except TimeoutError:
        sim.kill()
        out, _ = await sim.communicate()
    for line in reversed(out.decode(errors="replace").splitlines()):
        with contextlib.suppress(ValueError):
            blocks = json.loads(line).get(key)
            if isinstance(blocks, int):
                return blocks
    return None


def _retries_spent(state: Path) -> int:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT retries_left FROM progress").fetchall()
    return sum(MAX_RETRIES - int(left) for (left,) in rows)


def summary(calm: dict[str, Any], killed: dict[str, Any]) -> dict[str, Any]:
    base, with_kills = calm["commit_to_all_current_s"], killed["commit_to_all_current_s"]
    twice = None
    if killed["blocks"] is not None:
        twice = max(killed["blocks"] - killed["blocks_needed"], 0)
    return {
        "slowdown": round(with_kills / base, 2) if base and with_kills else None,
        "slowdown_goal": 1.3,
        "retries_spent_by_restarts": killed["retries_spent"] - calm["retries_spent"],
        "retries_goal": 0,
        "blocks_downloaded_twice": twice,
        "blocks_downloaded_twice_share": None if twice is None
        else round(twice / killed["blocks_needed"], 4),
        "blocks_twice_goal": 0.05,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--image-kib", type=int, default=256)
    parser.add_argument("--block-size", type=int, default=1024,
                        help="the simulated devices' Block2 size (16..1024)")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--delivery", choices=("pull", "push"), default="pull",
                        help="push: push-only devices (fota simulate --push)")
    args = parser.parse_args()
    size, push = args.image_kib * 1024, args.delivery == "push"
    with tempfile.TemporaryDirectory() as a:
        calm = await rollout(args.devices, Path(a), size, args.block_size, 0, push)
    with tempfile.TemporaryDirectory() as b:
        killed = await rollout(args.devices, Path(b), size, args.block_size, args.kills, push)
    print(json.dumps({"devices": args.devices, "image_bytes": size,
                      "delivery": args.delivery,
                      "block_size": PUSH_BLOCK if push else args.block_size,
                      **summary(calm, killed),
                      "without_kills": calm, "with_kills": killed}))


if __name__ == "__main__":
    asyncio.run(main())
