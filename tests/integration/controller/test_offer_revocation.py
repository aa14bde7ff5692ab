"""A firmware offer ends with its update: once a device is Current, UpdateFailed or
Reverted, or its target changes, a raw GET of its package URI answers 4.04."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import controller_harness as harness
from aiocoap import GET, Code, Context, Message
from controller_harness import device_id, states, until

from reconciler.model.status import UpdateState
from reconciler.simulator import SimDevice
from reconciler.simulator.faults import Fault

FAULTS = (frozenset(), frozenset({Fault.INTEGRITY}), frozenset({Fault.REVERT}),
          frozenset({Fault.SLOW}))
ENDINGS = (UpdateState.CURRENT, UpdateState.UPDATE_FAILED, UpdateState.REVERTED)


def capture_uri(device: SimDevice, uris: dict[str, str]) -> None:
    """Keep the first package URI written to the device (it is cleared on reboot)."""

    def written() -> bool:
        if device.fw.package_uri:
            uris.setdefault(device.endpoint, device.fw.package_uri)
        return False

    device.spawn(_watch(device, written))


async def _watch(device: SimDevice, predicate: Callable[[], bool]) -> None:
    await device.wait_for(predicate, timeout=None)


async def code_of_get(client: Context, uri: str) -> Code:
    response = await client.request(Message(code=GET, uri=uri)).response
    return response.code


async def test_an_offer_is_revoked_when_its_update_ends_or_its_target_changes(
    tmp_path: Path,
) -> None:
    repo = harness.DesiredRepo(tmp_path / "repo", count=4)
    devices = [replace(spec, faults=FAULTS[n]) for n, spec in enumerate(harness.specs(4))]
    async with harness.serving(harness.settings_for(repo, tmp_path / "s.db", max_retries=0,
                                    update_timeout=30.0, min_download_time=30.0)) as running, \
            harness.fleet_of(running, devices) as fleet:
        ctl = running.controller
        uris: dict[str, str] = {}
        for device in fleet.devices():
            capture_uri(device, uris)
        repo.set_target("2.0")
        ended = {device_id(n): ENDINGS[n] for n in range(3)}
        await until(ctl, lambda: all(states(ctl)[d] is s for d, s in ended.items()), 30)
        await until(ctl, lambda: states(ctl)[device_id(3)] is UpdateState.DOWNLOADING, 30)
        client = await Context.create_client_context()
        try:
            assert len(uris) == 4
            by_device = [uris[d.endpoint] for d in fleet.devices()]
            for uri in by_device[:3]:
                assert await code_of_get(client, uri) == Code.NOT_FOUND, uri
            assert await code_of_get(client, by_device[3]) == Code.CONTENT  # still in flight
            revision = repo.set_target("3.0")
            await until(ctl, lambda: ctl.desired.revision == revision, 10)
            await ctl.queue.idle()
            assert await code_of_get(client, by_device[3]) == Code.NOT_FOUND
        finally:
            await client.shutdown()
        # Bytes are held per image while offered, never per device: none offered now but
        # possibly device 3's new target.
        assert ctl.server.firmware.images_held() <= 1
