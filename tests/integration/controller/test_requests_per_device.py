"""What a rollout costs each device in requests from the server (issue 8, trim11).

Each request is airtime and a wake-up for an NB-IoT device, and a lost one costs a
retransmission timeout; these tests count them with real parts (`run_service` on
loopback, the simulator's devices, which count the requests they handle, and a
scripted peer over raw UDP), from the device's Register to Current:

- registration: /3/0 and /5/0 (the version; Object 5's state and delivery method);
- the attempt: the URI write (pull) or the blocks (push), and ONE Observe, of the
  /5/0 instance, whose notifications carry state and result together (not one Observe
  of /5/0/3 and one of /5/0/5);
- Execute;
- after the reboot's Register: /3/0 only, since /3/0/3 reporting the target is what
  makes the device Current and /5/0 would decide nothing.

A later attempt on such a device reads /5/0 before it acts (a busy Object 5 is reset
first), by the Observe it sets up anyway; a device that refuses an Observe of the
instance gets its resources observed one by one, as before.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import controller_harness as harness
import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from controller_harness import (
    DesiredRepo,
    all_in,
    device_id,
    fleet_of,
    serving,
    settings_for,
    specs,
    states,
    until,
)
from scripted_device import START, ScriptedDevice

from reconciler.model.lwm2m import (
    FW_STATE,
    FW_UPDATE,
    FW_UPDATE_RESULT,
    DeliveryMethod,
)
from reconciler.model.lwm2m import Path as LwPath
from reconciler.model.status import UpdateState

CURRENT = UpdateState.CURRENT
BLOCK = "PUT /5/0/0"  # one per pushed block
# Polls would add reads that depend on timing; these rollouts take a second or two.
QUIET = {"poll_interval": 30.0, "min_download_time": 30.0, "update_timeout": 30.0}

REGISTRATION = Counter({"GET /3/0": 1, "GET /5/0": 1})
ATTEMPT = {"pull": Counter({"PUT /5/0/1": 1, "GET /5/0 observe": 1}),
           "push": Counter({"GET /5/0 observe": 1})}  # and the blocks
INSTALL = Counter({"POST /5/0/2": 1})
VERIFY = Counter({"GET /3/0": 1})


@pytest.mark.parametrize("delivery", ["pull", "push"])
async def test_a_rollout_costs_each_device_one_observe_and_one_read_after_its_reboot(
        tmp_path: Path, delivery: str) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=3)
    method = DeliveryMethod.PUSH_ONLY if delivery == "push" else DeliveryMethod.PULL_ONLY
    settings = settings_for(repo, tmp_path / "s.db", **QUIET)
    async with serving(settings) as running, \
            fleet_of(running, specs(3, delivery=method)) as fleet:
        ctl = running.controller
        await until(ctl, all_in(ctl, CURRENT))
        registered = [Counter(d.requests) for d in fleet.devices()]
        repo.set_target("2.0")
        await fleet.wait_all(lambda d: d.version == "2.0", timeout=30)
        await until(ctl, lambda: ctl.desired.revision == repo.repo.head.commit.hexsha
                    and all_in(ctl, CURRENT)())
        rolled = [Counter(d.requests) - before
                  for d, before in zip(fleet.devices(), registered, strict=True)]
    assert registered == [REGISTRATION] * 3
    blocks = [r.pop(BLOCK, 0) for r in rolled]
    assert rolled == [ATTEMPT[delivery] + INSTALL + VERIFY] * 3
    assert all(b > 0 for b in blocks) if delivery == "push" else blocks == [0] * 3


async def test_the_next_target_reads_object_5_by_its_observe_before_it_acts(
        tmp_path: Path) -> None:
    """After an update /5/0 was not read (Object 5 unknown): the next attempt's Observe
    reads it, before the URI goes out, and nothing else is asked for it."""
    repo = DesiredRepo(tmp_path / "repo", count=1, target="2.0")
    settings = settings_for(repo, tmp_path / "s.db", **QUIET)
    async with serving(settings) as running, fleet_of(running, specs(1)) as fleet:
        ctl = running.controller
        device = fleet.device(harness.endpoint(0))
        await device.wait_version("2.0")
        await until(ctl, all_in(ctl, CURRENT))
        report = ctl.reports.get(device_id(0))
        assert report is not None and report.fw_state is None  # not read after the update
        before = Counter(device.requests)
        repo.set_target("3.0")
        await device.wait_version("3.0")
        await until(ctl, lambda: ctl.desired.revision == repo.repo.head.commit.hexsha
                    and all_in(ctl, CURRENT)())
        second = Counter(device.requests) - before
    assert second == ATTEMPT["pull"] + INSTALL + VERIFY, second


class ObservesResourcesOnly(ScriptedDevice):
    """Follows Object 5 for a pull, notifies nothing, and observes resources but not
    instances: an Observe of /5/0 is answered as a plain read (RFC 7641 3.2: not
    observable there). Records which requests asked to observe."""

    def __init__(self) -> None:
        super().__init__(START)
        self.observes: list[str] = []
        self.installs = ["2.0", "3.0"]  # what each Execute comes back running

    def answer(self, message: Message, path: LwPath) -> Message | None:
        self.pull(message, path)
        if path == FW_UPDATE and message.code == Code.POST:
            self.values.update({LwPath(3, 0, 3): self.installs.pop(0), FW_STATE: 0,
                                FW_UPDATE_RESULT: 1})
            asyncio.get_running_loop().call_soon(self.register, harness.endpoint(0))
        response = super().answer(message, path)
        if message.opt.observe == 0:
            self.observes.append(str(path))
            if response is not None and path.resource is not None:
                response.opt.observe = 1
        return response


async def test_a_device_that_will_not_observe_the_instance_gets_its_resources_observed(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=1, target="2.0")
    settings = settings_for(repo, tmp_path / "s.db", **QUIET)
    async with serving(settings) as running:
        transport, device = await asyncio.get_running_loop().create_datagram_endpoint(
            ObservesResourcesOnly, remote_addr=("127.0.0.1", running.coap_port))
        try:
            device.register(harness.endpoint(0))
            await asyncio.wait_for(device.registered.wait(), 5)
            ctl = running.controller
            # (15 s: it notifies nothing, so Downloaded is found by the server's check
            # after the last block, not by a poll, 30 s here)
            await until(ctl, lambda: states(ctl)[device_id(0)] is CURRENT, 15)
            first = len(device.requests)
            # The next target: Object 5 unknown since the update, and these Observes do
            # not carry all of it (/5/0/9), so /5/0 is read before the URI goes out.
            repo.set_target("3.0")
            await until(ctl, lambda: ctl.desired.revision == repo.repo.head.commit.hexsha
                        and states(ctl)[device_id(0)] is CURRENT, 15)
            await asyncio.gather(*device.downloads)
        finally:
            transport.close()
    # the instance once, refused; then each resource, as the server did before; the
    # instance is not asked for again
    assert device.observes == ["/5/0", "/5/0/3", "/5/0/5", "/5/0/3", "/5/0/5"]
    second = [(code, path) for _, code, path in device.requests[first:]]
    assert second[:4] == [("GET", "/5/0/3"), ("GET", "/5/0/5"), ("GET", "/5/0"),
                          ("PUT", "/5/0/1")], second
