"""The real outside programs the integration tests drive (libcoap's command-line tools,
Chromium, PostgreSQL's initdb and pg_ctl): one rule for all of them. A missing one skips
its tests with the reason, unless the FOTA_REQUIRE_* variable that .ci/run sets turns
the skip into a failure, so CI can never pass by skipping."""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import NoReturn

import pytest

LIBCOAP = "FOTA_REQUIRE_LIBCOAP"


def unavailable(reason: str, required_by: str) -> NoReturn:
    """Skip with `reason`, or fail when `required_by` is set to 1."""
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{reason} ({required_by}=1)")
    pytest.skip(reason)


def require_tool(name: str, package: str = "libcoap3-bin", required_by: str = LIBCOAP) -> str:
    """The path of the program `name`, or skip (fail under `required_by`)."""
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} not installed (Debian package {package}; `make test` installs "
                    "it when run as root)", required_by)
    return found


async def finished(*argv: str, timeout: float) -> tuple[int, bytes, bytes]:
    """Run `argv` to its end (returncode, stdout, stderr); killed and reaped if it has not
    ended within `timeout` seconds, so no test leaves it running."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    return await communicated(process, timeout)


async def communicated(process: asyncio.subprocess.Process,
                       timeout: float) -> tuple[int, bytes, bytes]:
    """Wait for a started `process` to end: (returncode, stdout, stderr), empty for a
    stream not piped; killed and reaped if it has not ended within `timeout` seconds."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out or b"", err or b""
