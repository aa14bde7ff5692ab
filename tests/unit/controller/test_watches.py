"""`Watches.start` with a device that answers the Observe of /5/0 as a plain read (no
Observe option, RFC 7641 3.2): that answer already carried all of /5/0 to the report,
so the executor must not read /5/0 again (`Observe(read=True)`); a device that refused
the instance with an error code carried nothing, and is read.

The device is a stand-in for `DeviceClient.observe` (what it returns is the LwM2M
layer's real `Observation`): what `Watches` decides is the unit under test here; the
wire is tested with a scripted peer in tests/integration/controller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from reconciler.controller.watches import Watches
from reconciler.errors import DeviceRequestFailed
from reconciler.lwm2m.codecs import Value
from reconciler.lwm2m.observe import Observation
from reconciler.model.lwm2m import FW_STATE, FW_UPDATE_RESULT, Path, Registration

INSTANCE = Path(5, 0)
REG = Registration("id-1", "ep", "127.0.0.1", 5683, 60, "1.1", "U", False, ("/5/0",),
                   0.0, 0.0)


class _Request:
    def __init__(self) -> None:
        self.response: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.response.set_result(None)


class PlainReadDevice:
    """Answers every Observe without Observe; an error to the instance if `refuses`."""

    def __init__(self, refuses: bool) -> None:
        self.refuses = refuses
        self.asked: list[Path] = []

    async def observe(self, path: Path, on_notify: Callable[[dict[Path, Value]], None], *,
                      timeout: float) -> Observation:
        self.asked.append(path)
        if self.refuses and path == INSTANCE:
            raise DeviceRequestFailed(str(path), "4.05", "not allowed")
        values: dict[Path, Value] = {FW_STATE: 0, FW_UPDATE_RESULT: 0}
        on_notify(values)
        return Observation(path, _Request(), None, values)


async def _start(device: PlainReadDevice) -> tuple[bool, Watches, list[dict[Path, Value]]]:
    watches, heard = Watches(), []
    client: Any = device
    whole = await watches.start(client,
                                REG, (FW_STATE, FW_UPDATE_RESULT), heard.append, 1.0)
    return whole, watches, heard


async def test_an_instance_answered_without_observe_counts_as_its_read() -> None:
    device = PlainReadDevice(refuses=False)
    whole, watches, heard = await _start(device)
    assert device.asked == [INSTANCE, FW_STATE]  # then /5/0/3 is refused as well
    assert whole and heard[0] == {FW_STATE: 0, FW_UPDATE_RESULT: 0}
    assert not watches.observing(REG) and not watches.can_observe(REG)  # polled


async def test_an_instance_refused_with_an_error_carried_nothing_and_is_not_a_read() -> None:
    device = PlainReadDevice(refuses=True)
    whole, watches, _ = await _start(device)
    assert device.asked == [INSTANCE, FW_STATE]
    assert not whole and not watches.can_observe(REG)
