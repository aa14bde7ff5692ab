"""A node applying a revision keeps another node's offer of that revision's target
(issue 13, downloads from any node).

The leader applies a revision and starts downloads at once; another node applies it a
moment later. A block GET the balancer sent to that node meanwhile filed the leader's
offer there (`RemoteOffers`). Its own retarget then must not revoke that offer: the
revocation also deleted the offer from the shared store, so every later block of that
download was a 4.04 and the device failed its update with Update Result 7 (seen in the
kill -9 three-node test on a loaded machine). An offer of the old target still ends.
Runs one node on SQLite: the retarget is the same code on every store.
"""

from __future__ import annotations

import time
from pathlib import Path

from controller_harness import DesiredRepo, device_id, endpoint, image_id, serving, settings_for

from reconciler.model.lwm2m import FirmwareOffer


async def test_an_offer_of_the_new_target_filed_before_this_node_applied_it_stays(
        tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo", count=2)
    async with serving(settings_for(repo, tmp_path / "state.db")) as running:
        controller = running.controller
        firmware = controller.server.firmware
        expires = time.time() + 600
        # what RemoteOffers files for a block GET of another node's offer
        firmware.restore(FirmwareOffer("T" * 24, endpoint(0), image_id("2.0"), expires),
                         b"2.0 image")
        firmware.restore(FirmwareOffer("U" * 24, endpoint(1), image_id("1.0"), expires),
                         b"1.0 image")
        repo.set_target("2.0")

        def retargeted() -> bool:
            records = [controller.decider.index.get(device_id(n)) for n in range(2)]
            return all(r is not None and r.target_image_id == image_id("2.0")
                       for r in records)

        await controller.decider.wait_for(retargeted, timeout=20)
        kept, ended = firmware.offered(endpoint(0)), firmware.offered(endpoint(1))
    assert kept is not None and kept.token == "T" * 24
    assert ended is None  # an offer of the old target ends with the retarget
