"""Big-commit benchmark (issue 8 item 6), printed as one JSON object.

`fota serve` runs as a child process on a repository with a few devices; a commit then
adds 200,000 devices and a second commit reverts it. Meanwhile a probe in this process
pings the server over CoAP (an empty Confirmable, answered by a Reset) and HTTP
(`GET /healthz`) every 50 ms, and a thread inside the child measures how late the event
loop runs a callback handed to it every 10 ms. Reported: the longest event-loop pause
and the longest CoAP and HTTP gaps between answers from each commit until the server is
idle again (goal: 100 ms), the longest garbage collection, how long applying took, and
the server's RSS (once idle) before, after the add, after the revert, after one more
small commit, after malloc_trim and after a full collection
(which also empties the interpreter's free lists).

The child runs on the allocator `fota serve` chooses: it executes itself again with
`PYTHONMALLOC=malloc` unless `PYTHONMALLOC` is set (`PYTHONMALLOC=pymalloc` for
CPython's own), as the console script does (reconciler/allocator.py); `allocator` in the
JSON says which ran.

The machine may be shared: for the longest pause the CPU time the whole server process
got meanwhile is reported too (`..._cpu_ms`, all threads). A pause with far less CPU
than wall time was the process waiting for a core, not working; collections over 20 ms
are counted per generation (a full one is generation 2). At the end the child unfreezes
the objects `heap.settle()` froze and collects once: `frozen_garbage` is the number of
unreachable objects that freezing had kept (what it would leak).

    .venv/bin/python bench/big_commit.py [--devices 200000]

Diagnosis: BENCH_SAMPLE_ABOVE=0.08 prints the loop thread's stacks during pauses longer
than that (and collections longer than that, with the thread that ran them),
BENCH_DUMP_ABOVE=0.08 dumps every thread's stack into the server's log when the loop is
that late (faulthandler: also while some thread holds the GIL; it reads the other
threads' frames while they run, and once killed the server mid-dump), BENCH_CHILD_LOG=FILE
keeps the server's log (with the steps of each apply), BENCH_LAG_LOG=FILE every loop
pause over 20 ms (to line up with a py-spy trace of the server), BENCH_AFTER_COMMITS=N
makes N more small commits after the later one before the trimmed figures, and
BENCH_TRACEMALLOC=FILE writes what was allocated during the add and outlived the revert
(no probe then: under tracemalloc its requests alone keep the server from going idle),
BENCH_SURVIVORS=FILE the objects in address windows that held none before the add,
BENCH_BIG_CONTAINERS=FILE every object over 256 KiB (a table that kept its size) and
BENCH_SMAPS=FILE the server's mappings by resident size, at each trim.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import faulthandler
import gc
import http.client
import itertools
import json
import math
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
import procs
import yaml
from rollout import write_images

COLLECTION = "c00001"
BASE_DEVICES = 10
PROBE_EVERY = 0.05
GOAL_MS = 100


# --- the child: `fota serve` plus an event-loop lag monitor --------------------------
def child(argv: list[str]) -> int:
    """Run `fota serve argv` with a thread that prints every event-loop pause > 20 ms."""
    # The allocator `fota serve` runs on by default (glibc's malloc unless PYTHONMALLOC is
    # set): this child executes itself again as the console script does, before any
    # thread, so the parent measures the same PID on the same allocator.
    from reconciler.allocator import exec_with_default
    exec_with_default()
    loops: list[asyncio.AbstractEventLoop] = []

    class Recording(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            loop = super().new_event_loop()
            loops.append(loop)
            return loop

    asyncio.set_event_loop_policy(Recording())
    threading.Thread(target=_monitor, args=(loops,), daemon=True).start()
    started: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.monotonic(), time.process_time()]
        elif started and (took := time.monotonic() - started[0]) > 0.02:
            cpu = (time.process_time() - started[1]) * 1000
            _say(f"gc {time.time():.3f} {took * 1000:.1f} {cpu:.1f} {info['generation']} "
                 f"{threading.current_thread().name.replace(' ', '_')}")

    def frozen_garbage(*_: object) -> None:
        gc.unfreeze()
        found = gc.collect()  # a full collection: it also empties the free lists
        ctypes.CDLL(None).malloc_trim(0)
        sys._debugmallocstats()  # what a full collection gives back (pymalloc_mb(2))
        _say(f"frozen {time.time():.3f} {found}")

    def trim(*_: object) -> None:
        if TRACEMALLOC:
            _outlived(Path(TRACEMALLOC))
        if SURVIVORS:
            _survivors(Path(SURVIVORS))
        if BIG_CONTAINERS:
            _big_containers(Path(BIG_CONTAINERS))
        ctypes.CDLL(None).malloc_trim(0)
        sys._debugmallocstats()  # pymalloc's arenas, on stderr: what the RSS is made of
        if SMAPS:
            _mappings(Path(SMAPS))
        _say(f"sqlite {time.time():.3f} {_sqlite_memory()}")

    gc.callbacks.append(on_gc)
    if TRACEMALLOC:
        tracemalloc.start(8)
    # Diagnosis: how much of the RSS is memory the C allocator holds but nobody uses.
    signal.signal(signal.SIGUSR1, trim)
    signal.signal(signal.SIGUSR2, frozen_garbage)
    from reconciler.cli import main
    return main(argv)


def _reachable() -> tuple[int, dict[int, object]]:
    """How many objects were frozen, and every object the collector knows with what they
    refer to directly, by address; unfreezes (the callers freeze again when done)."""
    frozen = gc.get_freeze_count()
    gc.unfreeze()  # gc.get_objects() leaves out the frozen generation
    objects = gc.get_objects()
    seen = {id(o): o for o in objects}
    for o in objects:
        for r in gc.get_referents(o):
            seen.setdefault(id(r), r)
    return frozen, seen


def _outlived(out: Path) -> None:
    """Diagnosis (BENCH_TRACEMALLOC=FILE): at the first call forget every trace; at the
    next, append to FILE what was allocated since and is still alive, by traceback, and
    how many 1 MiB address windows (about pymalloc's arenas) its objects occupy alone."""
    if not out.exists():
        tracemalloc.clear_traces()
        out.write_text("tracing since before the add\n")
        return
    stats = tracemalloc.take_snapshot().statistics("traceback")
    frozen, seen = _reachable()
    windows: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    pinners: collections.Counter[str] = collections.Counter()
    for address, o in seen.items():
        small = sys.getsizeof(o, 0) <= 512
        if not small:
            continue
        new = tracemalloc.get_object_traceback(o)
        w = windows[address >> 20]
        w[0 if new is None else 1] += 1
        if new is not None:
            w[2] += 1
            pinners[" < ".join(f"{Path(f.filename).name}:{f.lineno}"
                               for f in list(new)[-6:][::-1])] += 1
    alone = [a for a, w in windows.items() if w[0] == 0 and w[1]]
    shared = [a for a, w in windows.items() if w[0] and w[1]]
    alone_pinners: collections.Counter[str] = collections.Counter()
    for address, o in seen.items():
        if address >> 20 in alone and sys.getsizeof(o, 0) <= 512:
            new = tracemalloc.get_object_traceback(o)
            if new is not None:
                alone_pinners[f"{type(o).__name__} " + " < ".join(
                    f"{Path(f.filename).name}:{f.lineno}" for f in list(new)[-8:][::-1])] += 1
    with (writing := out.with_suffix(".partial")).open("w") as f:
        print(f"frozen {frozen}; objects {len(seen)}; windows {len(windows)}: "
              f"only new objects {len(alone)}, mixed {len(shared)}", file=f)
        print(f"outlived: {sum(s.count for s in stats)} blocks, "
              f"{sum(s.size for s in stats)} bytes", file=f)
        for stat in stats[:40]:
            print(f"\n{stat.count} blocks {stat.size} B", file=f)
            for line in stat.traceback.format()[-16:]:
                print("   " + line, file=f)
        print("\nnew objects alone in a window, by type and where made:", file=f)
        for where, count in alone_pinners.most_common(60):
            print(f"{count:6d} {where}", file=f)
    writing.rename(out)
    gc.freeze()


_windows_before: set[int] = set()


def _survivors(out: Path) -> None:
    """Diagnosis without tracemalloc (BENCH_SURVIVORS=FILE): at the first call note the
    1 MiB address windows the objects then alive occupy; at the next, write the objects
    alive in windows that held none then (the ones that keep the add's arenas), by type,
    with a few examples each."""
    frozen, seen = _reachable()
    if not _windows_before:
        _windows_before.update(address >> 20 for address in seen)
        out.write_text("")
    else:
        new = [(a, o) for a, o in seen.items()
               if a >> 20 not in _windows_before and sys.getsizeof(o, 0) <= 512]
        kinds = collections.Counter(type(o).__name__ for _, o in new)
        examples: dict[str, list[str]] = collections.defaultdict(list)
        for _, o in new:
            found = examples[type(o).__name__]
            if len(found) < 4:
                try:
                    found.append(repr(o)[:160])
                except Exception as exc:  # any object, any repr
                    found.append(f"<repr failed: {exc!r}>"[:160])
        windows = collections.Counter(a >> 20 for a, _ in new)
        with out.open("w") as f:
            print(f"{len(new)} small objects in {len(windows)} windows new since the "
                  "first call", file=f)
            for kind, count in kinds.most_common(40):
                print(f"{count:7d} {kind}: {' | '.join(examples[kind])}", file=f)
    del seen
    gc.freeze()
    if not frozen:
        gc.unfreeze()


def _big_containers(out: Path) -> None:
    """Diagnosis (BENCH_BIG_CONTAINERS=FILE): append every object the collector knows (and
    what those refer to directly) of over 256 KiB by `sys.getsizeof`, with its length, a
    few of its entries and the types (and a few names) of what refers to it: a table
    grown for a big revision that kept its size after its entries left."""
    frozen, seen = _reachable()
    big = [o for o in seen.values() if sys.getsizeof(o, 0) > 256 * 1024]
    with out.open("a") as f:
        print(f"--- {time.time():.3f}: {len(big)} objects over 256 KiB", file=f)
        for o in sorted(big, key=lambda o: -sys.getsizeof(o, 0)):
            try:
                size = len(o)  # type: ignore[arg-type]
                entries = repr(list(itertools.islice(iter(o), 3)))[:200]  # type: ignore[call-overload]
            except Exception as exc:  # any object
                size, entries = -1, repr(exc)[:100]
            holders = []
            for r in gc.get_referrers(o):
                if r is seen or (isinstance(r, list) and len(r) > 100_000):
                    continue  # this walk's own tables
                name = type(r).__name__
                if isinstance(r, dict):
                    owners = [type(h).__name__ for h in gc.get_referrers(r)
                              if h is not seen and not isinstance(h, list | dict)][:3]
                    keys = [k for k, v in r.items() if v is o][:2]
                    name = f"dict{keys} of {owners}"
                holders.append(name)
            print(f"{sys.getsizeof(o, 0) / 2**20:8.2f} MiB {type(o).__name__} len {size} "
                  f"{entries} <- {holders[:6]}", file=f)
    del seen, big
    gc.freeze()
    if not frozen:
        gc.unfreeze()


def _mappings(out: Path) -> None:
    """Diagnosis (BENCH_SMAPS=FILE): append the process's mappings by resident size (after
    the trim): which of the RSS is pymalloc's arenas (anonymous, 1 MiB each, often merged
    into one mapping), glibc's heap ([heap], and a thread's 64 MiB arena), or files."""
    maps: list[tuple[int, int, str]] = []
    current: list[Any] = []
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            start, end = (int(x, 16) for x in head[0].split("-"))
            current = [end - start, 0, head[5] if len(head) > 5 else "[anon]"]
            maps.append(current)  # type: ignore[arg-type]
        elif head[0] == "Rss:":
            current[1] = int(head[1])
    by_name: collections.Counter[str] = collections.Counter()
    for size, rss, name in maps:
        kind = name if name.startswith("[") else "file" if name.startswith("/") else name
        if kind == "[anon]":
            kind += " 1MiB-multiple" if size % 2**20 == 0 else " other"
        by_name[kind] += rss
    with out.open("a") as f:
        print(f"--- {time.time():.3f} rss kB by kind: {dict(by_name.most_common())}", file=f)
        for size, rss, name in sorted(maps, key=lambda m: -m[1])[:25]:
            print(f"{rss:8d} kB of {size // 1024:8d} kB {name}", file=f)


def _sqlite_memory() -> int:
    """Bytes SQLite holds in this process (page caches, statements), or -1 unknown."""
    try:
        used = ctypes.CDLL("libsqlite3.so.0").sqlite3_memory_used
    except OSError:
        return -1
    used.restype = ctypes.c_int64
    return int(used())


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())  # one write per line: two threads print


def _monitor(loops: list[asyncio.AbstractEventLoop]) -> None:
    while not loops:
        time.sleep(0.01)
    loop, ran = loops[0], threading.Event()
    schedstat = Path(f"/proc/self/task/{threading.main_thread().native_id}/schedstat")
    while not loop.is_closed():
        # Armed while this thread holds the GIL, before anything that lets it go (the
        # sleep, the reads): a thread that takes the GIL for long meanwhile is seen too.
        if DUMP_ABOVE:  # a C thread dumps every thread's stack, the GIL's holder's too
            faulthandler.dump_traceback_later(DUMP_ABOVE + 0.01)
        time.sleep(0.01)
        ran.clear()
        # The /proc reads first: each one lets the GIL go and waits to get it back (up
        # to a switch interval while another thread runs Python), so read between
        # `asked` and the call they counted this thread's own waits as the loop's pause.
        sched, others = _sched(schedstat), _others_queued()
        asked, cpu = time.monotonic(), time.process_time()
        try:
            loop.call_soon_threadsafe(ran.set)
        except RuntimeError:
            return
        stacks = _sample_while_late(loop, ran)
        lag = time.monotonic() - asked
        if DUMP_ABOVE:
            faulthandler.cancel_dump_traceback_later()
            if lag > DUMP_ABOVE:  # whose stacks those were (the dump names idents only)
                names = {t.ident: t.name for t in threading.enumerate()}
                os.write(2, f"dumped {time.time():.3f} {lag * 1000:.1f} ms: {names}\n".encode())
        if lag > 0.02:
            on_cpu, queued = (b - a for a, b in zip(sched, _sched(schedstat), strict=True))
            after = _others_queued()
            other = max((after[t] - others.get(t, 0.0) for t in after), default=0.0)
            _say(f"lag {time.time():.3f} {lag * 1000:.1f} "
                 f"{(time.process_time() - cpu) * 1000:.1f} {on_cpu:.1f} {queued:.1f} "
                 f"{other:.1f}")
        if lag > SAMPLE_ABOVE and stacks:
            for stack, count in collections.Counter(stacks).most_common(3):
                _say(f"stack {time.time():.3f} {count} {stack}")


def _others_queued() -> dict[str, float]:
    """Ms each thread but the loop's was runnable but waiting for a core, so far: a
    thread that holds the GIL while it waits for a core holds the loop up as long."""
    loop = str(threading.main_thread().native_id)
    found = {}
    for task in Path("/proc/self/task").iterdir():
        if task.name != loop:
            with contextlib.suppress(OSError):
                found[task.name] = int((task / "schedstat").read_text().split()[1]) / 1e6
    return found


def _sched(schedstat: Path) -> tuple[float, float]:
    """The loop thread's (ms on a core, ms runnable but waiting for one) so far."""
    on_cpu, queued, _ = schedstat.read_text().split()
    return int(on_cpu) / 1e6, int(queued) / 1e6


SAMPLE_ABOVE = float(os.environ.get("BENCH_SAMPLE_ABOVE", "inf"))  # s; diagnosis only
CHILD_LOG = os.environ.get("BENCH_CHILD_LOG")  # a file for the server's log; diagnosis only
# a file for every loop pause over 20 ms: (when, ms, process CPU ms, loop thread on a core,
# waiting for one, the most another thread waited for one); diagnosis only
LAG_LOG = os.environ.get("BENCH_LAG_LOG")
# more small commits after the later one, before the trimmed figures: does ordinary work
# after a revert give back what it kept? (diagnosis: `rss_after_a_later_commit_mb` then
# is after the last of them)
AFTER_COMMITS = int(os.environ.get("BENCH_AFTER_COMMITS", "0"))
SURVIVORS = os.environ.get("BENCH_SURVIVORS")  # a file for what keeps the add's arenas
BIG_CONTAINERS = os.environ.get("BENCH_BIG_CONTAINERS")  # a file for tables over 256 KiB
SMAPS = os.environ.get("BENCH_SMAPS")  # a file for the mappings by resident size
TRACEMALLOC = os.environ.get("BENCH_TRACEMALLOC")  # a file for what outlives the add
# s: dump every thread's Python stack into the server's log during longer loop pauses
# (faulthandler's own thread, which needs no GIL: it names the thread holding it)
DUMP_ABOVE = float(os.environ.get("BENCH_DUMP_ABOVE", "0"))


def _sample_while_late(loop: asyncio.AbstractEventLoop, ran: threading.Event) -> list[str]:
    """Wait for `ran`; with BENCH_SAMPLE_ABOVE set, every 20 ms the loop is late sample
    the loop thread's Python stack (what it is doing or waiting in)."""
    if math.isinf(SAMPLE_ABOVE):
        ran.wait()
        return []
    stacks: list[str] = []
    while not ran.wait(0.02):
        frame = sys._current_frames().get(getattr(loop, "_thread_id", None) or -1)
        where: list[str] = []
        while frame is not None and len(where) < 12:
            code = frame.f_code
            where.append(f"{Path(code.co_filename).name}:{frame.f_lineno}:{code.co_name}")
            frame = frame.f_back
        stacks.append("<".join(where))
    return stacks


# --- the repository ----------------------------------------------------------------
def make_repo(root: Path) -> git.Repo:
    repo = git.Repo.init(root, initial_branch="main")  # fota serve follows main
    base = write_images(root, 4096, "i0000")
    doc = {"collectionId": COLLECTION, "name": "bench",
           "firmware": {"management": "collection", "target": "2.0"},
           "rollout": {}}  # unguarded, as measured before safe default guards existed
    (base / "collection.yaml").write_text(yaml.safe_dump(doc))
    write_devices(root, BASE_DEVICES)
    commit(repo, "base")
    return repo


def device_lines(count: int) -> str:
    return "devices:\n" + "".join(f'- {{"endpoint": "ep-{i:07d}"}}\n' for i in range(count))


def write_devices(root: Path, count: int, text: str | None = None) -> None:
    path = root / "manifests" / "bench" / "devices" / "all.yaml"
    path.write_text(text if text is not None else device_lines(count))


def commit(repo: git.Repo, message: str) -> float:
    repo.git.add(A=True)
    repo.git.commit("-q", "-m", message)
    return time.time()


# --- the probe ----------------------------------------------------------------------
@dataclass
class Probe:
    """Pings CoAP and HTTP every 50 ms from two threads, keeping each answer's time."""

    coap_port: int
    http_port: int
    coap: list[float] = field(default_factory=list)
    http: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        for target in (self._coap, self._http):
            threading.Thread(target=target, daemon=True).start()

    def _every(self, ping: Callable[[], bool], into: list[float]) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            if ping():
                into.append(time.time())
            self.stop.wait(max(0.0, PROBE_EVERY - (time.monotonic() - started)))

    def _coap(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", self.coap_port))
        sock.settimeout(5.0)
        mid = random.randrange(0x10000)

        def ping() -> bool:
            nonlocal mid
            mid = (mid + 1) & 0xFFFF
            sock.send(bytes([0x40, 0x00, mid >> 8, mid & 0xFF]))  # CON, empty
            try:
                while True:
                    reply = sock.recv(64)
                    if len(reply) >= 4 and reply[2:4] == bytes([mid >> 8, mid & 0xFF]):
                        return True
            except OSError:
                return False

        self._every(ping, self.coap)
        sock.close()

    def _http(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5.0)

        def ping() -> bool:
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                return True
            except (OSError, http.client.HTTPException):
                conn.close()
                return False

        self._every(ping, self.http)
        conn.close()


def longest_gap_ms(times: list[float], start: float, end: float) -> float:
    """The longest stretch in [start, end] without an answer."""
    return longest_gap(times, start, end)[0]


def longest_gap(times: list[float], start: float, end: float) -> tuple[float, float]:
    """The longest stretch in [start, end] without an answer: (ms, when it ended)."""
    inside = [start] + [t for t in times if start < t < end] + [end]
    gap, ended = max((b - a, b) for a, b in itertools.pairwise(inside))
    return round(gap * 1000, 1), round(ended, 3)


# --- the run ------------------------------------------------------------------------
class Child:
    def __init__(self, repo: Path, state: Path, coap: int, http_port: int) -> None:
        self.args = [sys.executable, __file__, "--child", "serve", "--repo", str(repo),
                     "--state", str(state), "--coap", f"127.0.0.1:{coap}",
                     "--http", f"127.0.0.1:{http_port}"]
        self.log: list[tuple[float, str]] = []
        self.state, self.wal_peak = state, 0.0
        # (when, how long, process CPU, loop thread on a core, loop thread waiting for one,
        # the most another thread waited for one)
        self.lags: list[tuple[float, float, float, float, float, float]] = []
        # (when, ms, process CPU ms, generation) of collections over 20 ms
        self.gcs: list[tuple[float, float, float, int]] = []
        self.frozen_garbage: int | None = None
        self.sqlite_mb: list[float] = []  # SQLite's own memory at each trimmed_rss_mb
        self._changed = asyncio.Event()

    async def start(self) -> None:
        env = {**os.environ, "FOTA_POLL_SOURCE": "1", "FOTA_RESYNC_INTERVAL": "3600"}
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env)
        self._tasks = [asyncio.create_task(self._read_log()),
                       asyncio.create_task(self._read_lags())]
        await self.wait_for("fota serve ready", 0.0, 120)

    async def _read_log(self) -> None:
        assert self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            self.log.append((time.time(), raw.decode(errors="replace")))
            self._changed.set()

    async def _read_lags(self) -> None:
        assert self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            kind, at, ms, *extra = raw.decode().split()
            if kind == "lag":
                cpu, on_cpu, queued, other = map(float, extra)
                self.lags.append((float(at), float(ms), cpu, on_cpu, queued, other))
                if float(ms) > SAMPLE_ABOVE * 1000:
                    print(raw.decode().strip(), file=sys.stderr)
            elif kind == "stack":
                print(raw.decode().strip(), file=sys.stderr)
            elif kind == "sqlite":
                self.sqlite_mb.append(round(int(ms) / 2**20, 1))
            elif kind == "gc":
                self.gcs.append((float(at), float(ms), float(extra[0]), int(extra[1])))
                if float(ms) > SAMPLE_ABOVE * 1000:  # which thread collected, and when
                    print(raw.decode().strip(), file=sys.stderr)
            else:
                self.frozen_garbage = int(ms)
                self._changed.set()

    async def wait_for(self, text: str, since: float, timeout: float) -> float:
        async with asyncio.timeout(timeout):
            while True:
                hits = [at for at, line in self.log if at >= since and text in line]
                if hits:
                    return hits[0]
                if self.proc.returncode is not None:
                    raise RuntimeError("fota serve exited:\n" + "".join(
                        line for _, line in self.log[-20:]))
                self._changed.clear()
                await self._changed.wait()

    def longest_lag(self, start: float, end: float) -> dict[str, Any]:
        """The longest loop pause in [start, end]: how long, the process CPU time
        meanwhile, and how the loop thread spent it (on a core, runnable but waiting for
        one, blocked: in I/O, a lock or a sleep); and the longest pause less its wait for
        a core (what it would have been with a core free: the figure load does not
        inflate)."""
        inside = [lag for lag in self.lags if start <= lag[0] <= end]
        _, ms, cpu, on_cpu, queued, other = max(inside, key=lambda lag: lag[1],
                                                default=(0.0,) * 6)
        unqueued = max((lag[1] - lag[4] for lag in inside), default=0.0)
        return {"longest_loop_pause_ms": ms, "longest_loop_pause_cpu_ms": cpu,
                "longest_loop_pause_loop_thread": {
                    "on_cpu_ms": round(on_cpu, 1), "waiting_for_cpu_ms": round(queued, 1),
                    "blocked_ms": round(max(0.0, ms - on_cpu - queued), 1),
                    # the longest another thread meanwhile waited for a core (with the
                    # GIL, the loop thread waits as long, and counts it as blocked)
                    "another_thread_waiting_for_cpu_ms": round(other, 1)},
                "longest_loop_pause_without_cpu_wait_ms": round(unqueued, 1)}

    def gc_summary(self, start: float, end: float) -> dict[str, Any]:
        """The longest collection over 20 ms in [start, end] (and the process CPU time
        during it), and how many there were per generation."""
        inside = [(ms, cpu, gen) for at, ms, cpu, gen in self.gcs if start <= at <= end]
        longest = max(inside, default=(0.0, 0.0, 0))
        return {"longest_gc_ms": longest[0], "longest_gc_cpu_ms": longest[1],
                "gc_over_20ms_by_generation": {
                    str(g): sum(1 for *_, gen in inside if gen == g) for g in range(3)}}

    async def count_frozen_garbage(self) -> int | None:
        """Unfreeze and collect in the child (SIGUSR2); the unreachable objects found."""
        self.proc.send_signal(signal.SIGUSR2)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while self.frozen_garbage is None:
                    self._changed.clear()
                    await self._changed.wait()
        return self.frozen_garbage

    async def trimmed_rss_mb(self) -> float:
        """RSS once the C allocator gave back what it holds unused (SIGUSR1; the child
        also writes pymalloc's statistics then: `pymalloc_mb`)."""
        analysis = Path(TRACEMALLOC or "/nonexistent")
        before = analysis.read_text() if analysis.exists() else None
        self.proc.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.5)
        while TRACEMALLOC and (not analysis.exists() or analysis.read_text() in ("", before)):
            await asyncio.sleep(1.0)  # the child's analysis (_outlived) is not written yet
        return self.rss_mb()

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def quiet(self, timeout: float = 600) -> float:
        """Until the server used under 15 % of a core for two seconds (its queue has
        worked through the revision's devices); returns when."""
        async with asyncio.timeout(timeout):
            while True:
                before = self.cpu_s()
                await asyncio.sleep(2.0)
                if self.cpu_s() - before < (1.0 if TRACEMALLOC else 0.3):  # see Probe
                    return time.time()

    async def wal_peak_mb(self) -> None:
        """The largest the state file's WAL grew, sampled every 0.5 s until cancelled."""
        self.wal_peak = 0.0
        wal = Path(f"{self.state}-wal")
        while True:
            with contextlib.suppress(FileNotFoundError):
                self.wal_peak = max(self.wal_peak, round(wal.stat().st_size / 2**20, 1))
            await asyncio.sleep(0.5)

    def pymalloc_mb(self, nth: int) -> dict[str, float]:
        """From the child's `nth` sys._debugmallocstats(): MiB in pymalloc's arenas, in
        live small objects, free inside used pools and in unused pools (an arena goes
        back to the system only once every object in it is gone), and the most arenas
        (MiB) there ever were."""
        wanted = {"# bytes in allocated blocks": "objects_mb",
                  "# bytes in available blocks": "free_in_pools_mb",
                  "unused pools": "unused_pools_mb", "Total": "arenas_mb",
                  "# arenas highwater mark": "arenas_highwater"}
        dumps: list[dict[str, float]] = []
        for _, line in self.log:
            if line.startswith("Small block threshold"):
                dumps.append({})
            name, _, value = line.partition("=")
            key = wanted.get(name.strip()) or wanted.get(name.split("*")[0].strip(" 0123456789"))
            if dumps and key and key not in dumps[-1]:  # the first Total is the arenas'
                number = int(value.strip().replace(",", ""))
                dumps[-1][key] = number if key == "arenas_highwater" else round(number / 2**20, 1)
        return dumps[nth] if len(dumps) > nth else {}

    def rss_mb(self) -> float:
        return round(procs.rss_mb(self.proc.pid), 1)

    async def stop(self) -> None:
        await procs.stop(self.proc, 60)
        await asyncio.gather(*self._tasks)


async def apply(server: Child, probe: Probe, repo: git.Repo, count: int, text: str,
                message: str) -> dict[str, Any]:
    """Commit a device list of `count` devices; measure until it is applied + SETTLE."""
    root = Path(repo.working_dir)
    start = time.time()
    await asyncio.to_thread(write_devices, root, count, text)
    committed = await asyncio.to_thread(commit, repo, message)
    revision = repo.head.commit.hexsha[:12]
    applied = await server.wait_for(f"revision {revision} applied", committed, 600)
    wal = asyncio.create_task(server.wal_peak_mb())
    end = await server.quiet()
    wal.cancel()
    return {"devices": count, "commit_to_applied_s": round(applied - committed, 2),
            "commit_to_quiet_s": round(end - committed, 2),
            **server.longest_lag(start, end),
            **server.gc_summary(start, end),
            "longest_coap_gap_ms": longest_gap_ms(probe.coap, start, end),
            "longest_http_gap_ms": longest_gap_ms(probe.http, start, end),
            # when those gaps ended (epoch s), to find them in a trace
            "longest_gaps_ended": [longest_gap(probe.coap, start, end)[1],
                                   longest_gap(probe.http, start, end)[1]],
            "rss_mb": server.rss_mb(), "wal_peak_mb": server.wal_peak}


async def run(devices: int, tmp: Path) -> dict[str, Any]:
    repo = make_repo(tmp / "repo")
    coap, http_port = procs.free_udp_port(), procs.free_tcp_port()
    server = Child(tmp / "repo", tmp / "state.db", coap, http_port)
    await server.start()
    probe = Probe(coap, http_port)
    if not TRACEMALLOC:  # under tracemalloc the probe's requests alone keep it busy
        probe.start()
    big = device_lines(devices)
    try:
        await server.quiet()
        before = server.rss_mb()
        trimmed_before = await server.trimmed_rss_mb()
        added = await apply(server, probe, repo, devices, big, f"add {devices} devices")
        del big
        reverted = await apply(server, probe, repo, BASE_DEVICES, device_lines(BASE_DEVICES),
                               "revert")
        # The source keeps the previous load's per-file device memo (a bad commit then
        # its fix cost nothing): only the commit after the revert lets the 200,000 go.
        later = await apply(server, probe, repo, BASE_DEVICES,
                            device_lines(BASE_DEVICES) + "# touched\n", "a later commit")
        for n in range(AFTER_COMMITS):  # ordinary work after the revert (diagnosis)
            later = await apply(server, probe, repo, BASE_DEVICES,
                                device_lines(BASE_DEVICES) + f"# touched {n}\n", f"later {n}")
        trimmed = await server.trimmed_rss_mb()
        frozen_garbage = await server.count_frozen_garbage()
        await asyncio.sleep(0.5)  # the statistics come on the log
        collected = server.rss_mb()
        pymalloc = server.pymalloc_mb(1)
    finally:
        probe.stop.set()
        await server.stop()
        if CHILD_LOG:  # diagnosis: the server's own log, each line with when it came
            Path(CHILD_LOG).write_text("".join(f"{at:.3f} {line}" for at, line in server.log))
        if LAG_LOG:  # diagnosis: every pause over 20 ms, to line up with a py-spy trace
            Path(LAG_LOG).write_text("".join(" ".join(map(str, lag)) + "\n"
                                             for lag in server.lags))
    allocator = [line.split(", allocator ", 1)[1].strip() for _, line in server.log
                 if "fota serve ready" in line and ", allocator " in line]
    return {"devices": devices, "goal_ms": GOAL_MS,
            "allocator": allocator[0] if allocator else None, "rss_before_mb": before,
            "rss_before_and_malloc_trim_mb": trimmed_before,
            "pymalloc_before_mb": server.pymalloc_mb(0), "sqlite_memory_mb": server.sqlite_mb,
            "add": added, "revert": reverted,
            "rss_after_add_mb": added["rss_mb"], "rss_after_revert_mb": reverted["rss_mb"],
            "rss_kept_after_revert_mb": round(reverted["rss_mb"] - before, 1),
            "rss_after_a_later_commit_mb": later["rss_mb"],
            "rss_after_revert_and_malloc_trim_mb": trimmed, "frozen_garbage": frozen_garbage,
            "pymalloc_after_revert_mb": pymalloc,
            # after a full collection (which also empties the interpreter's free lists)
            "rss_after_a_full_collection_mb": collected,
            "pymalloc_after_a_full_collection_mb": server.pymalloc_mb(2)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(run(args.devices, Path(tmp)))))


if __name__ == "__main__":
    main()
