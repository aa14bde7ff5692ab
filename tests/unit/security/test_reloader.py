"""The credentials reloader: a good file swaps the set and tells subscribers, a bad one
keeps the last good set (logged once, shown in the status), unchanged content is no
reload; a rewrite in the watched directory and SIGHUP each trigger one."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from reconciler.security.credentials import Credentials, CredentialsError
from reconciler.security.reloader import CredentialsReloader

KEY = "5ec12e75ec12e75ec12e75ec12e75ec1"


def creds(*names: str) -> str:
    return "identity,key,endpoint\n" + "".join(f"{n},{KEY},ep-{n}\n" for n in names)


def test_a_bad_file_at_start_raises(tmp_path: Path) -> None:
    path = tmp_path / "creds.csv"
    path.write_text("identity,key,endpoint\nd1,zz,e1\n")
    with pytest.raises(CredentialsError, match=r"creds.csv:2: key: not hex"):
        CredentialsReloader(path).load()


async def test_reloads_swap_good_files_and_keep_the_last_good_set(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "creds.csv"
    path.write_text(creds("a"))
    records: list[dict[str, object]] = []
    reloader = CredentialsReloader(path, record=lambda s: records.append(dict(s)),
                                   clock=lambda: 1000.0)
    seen: list[tuple[Credentials, Credentials]] = []
    reloader.subscribe(lambda old, new: seen.append((old, new)))
    first = reloader.load()
    assert len(first) == 1 and records[-1]["count"] == 1 and records[-1]["reason"] == "start"
    assert seen and len(seen[0][0]) == 0 and seen[0][1] is first

    path.write_text(creds("a", "b"))
    assert await reloader.reload("test") is True
    assert seen[-1] == (first, reloader.current) and len(reloader.current) == 2
    assert await reloader.reload("again") is False  # same content: nothing swapped
    assert len(seen) == 2

    caplog.set_level(logging.ERROR, logger="reconciler.security")
    good = reloader.current
    path.write_text(creds("a") + f"b,{KEY}0,ep-b\n")
    assert await reloader.reload("bad") is False
    assert await reloader.reload("bad again") is False
    assert reloader.current is good and len(seen) == 2
    status = reloader.status()
    assert status["count"] == 2 and status["error"] == f"{path}:3: key: not hex: write an " \
        "even number of digits 0-9, a-f" and status["error_at"] == 1000.0
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and f"{path}:3: key" in logged[0] and KEY not in logged[0]

    path.write_text(creds("c"))
    assert await reloader.reload("fixed") is True
    assert reloader.status()["error"] is None and reloader.status()["reloads"] == 2
    assert [c.endpoint for c in reloader.current] == ["ep-c"]


async def test_run_reloads_on_a_rewrite_and_on_sighup(tmp_path: Path) -> None:
    watched, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    watched.mkdir()
    elsewhere.mkdir()
    (elsewhere / "real.csv").write_text(creds("a"))
    path = watched / "creds.csv"
    path.symlink_to(elsewhere / "real.csv")  # edits of the target are not seen: SIGHUP
    reloader = CredentialsReloader(path)
    reloader.load()
    swapped: asyncio.Queue[str] = asyncio.Queue()
    reloader.subscribe(lambda old, new: swapped.put_nowait(str(reloader.status()["reason"])))
    stop = asyncio.Event()
    task = asyncio.create_task(reloader.run(stop))
    try:
        async with asyncio.timeout(20):
            await reloader.watching.wait()
            assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL
            (elsewhere / "real.csv").write_text(creds("a", "b"))
            os.kill(os.getpid(), signal.SIGHUP)
            assert await swapped.get() == "SIGHUP"
            assert len(reloader.current) == 2
            path.unlink()
            path.write_text(creds("x", "y", "z"))
            assert await swapped.get() == "file changed"
            assert len(reloader.current) == 3
    finally:
        stop.set()
        await task
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
