"""`SideThread` (reconciler/side_thread.py): one call at a time on a thread of its own,
and a call that never returns holds neither the next calls' callers nor the process's
exit (a real subprocess, as `fota serve` stopping with its database gone)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

from reconciler.side_thread import SideThread, StillRunning


async def test_calls_run_one_at_a_time_and_work_queued_after_a_stuck_one_waits() -> None:
    side, release, order = SideThread("test-side"), threading.Event(), []

    def stuck() -> str:
        order.append("stuck")
        release.wait(10)
        return "late"

    try:
        with pytest.raises(TimeoutError):
            await side.call(stuck, timeout=0.05)
        with pytest.raises(StillRunning):
            await side.call(lambda: order.append("next"), timeout=1)
        side.later(lambda: order.append("after"))
        release.set()
        assert side._running is not None
        assert await asyncio.wrap_future(side._running) == "late"  # the stuck call ended
        assert await side.call(lambda: order.append("then") or "done", timeout=5) == "done"
        assert order == ["stuck", "after", "then"]
    finally:
        release.set()
        await side.close(lambda: None, timeout=5)


def test_a_call_that_never_returns_does_not_hold_the_process_s_exit() -> None:
    script = textwrap.dedent("""
        import asyncio, threading
        from reconciler.side_thread import SideThread

        async def main():
            side = SideThread("hung")
            try:
                await side.call(threading.Event().wait, timeout=0.05)
            except TimeoutError:
                pass
            await side.close(lambda: None, timeout=0.05)
            print("closed", flush=True)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)  # the hung call would hold it for ever
    assert (done.returncode, done.stdout.strip()) == (0, "closed"), done.stderr
