"""Which offers a restarted server serves again: only a running download of the
device's present target. Anything that ended, failed or was retargeted stays revoked."""

from __future__ import annotations

import pytest

from reconciler.controller.restore import offer_still_wanted
from reconciler.model.desired import Collection, DesiredState, Device, FirmwareImage, Management
from reconciler.model.lwm2m import FirmwareOffer
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState as S

CID, OLD, NEW = "c1", "img-old", "img-new"


def _desired(target: str = NEW) -> DesiredState:
    images = {i: FirmwareImage(i, CID, v, f"{v}.bin", "00" * 32, 10, 0, f"{v}.bin")
              for i, v in ((OLD, "1.0"), (NEW, "2.0"))}
    return DesiredState("r", {CID: Collection(CID, "c", Management.COLLECTION, target)},
                        images, {"d1": Device("d1", CID, "ep1")})


OFFER = FirmwareOffer("tok", "ep1", NEW, expires_at=1e12)


@pytest.mark.parametrize("state", [S.INITIALIZING, S.DOWNLOADING, S.DOWNLOADED])
def test_a_download_in_flight_for_the_present_target_keeps_its_offer(state: S) -> None:
    assert offer_still_wanted(OFFER, _desired(), DeviceProgress("d1", NEW, state))


@pytest.mark.parametrize("state", [S.PENDING, S.UPDATING, S.COMPLETED, S.CURRENT,
                                   S.UPDATE_FAILED, S.TIMED_OUT, S.REVERTED])
def test_an_update_past_or_out_of_its_download_drops_its_offer(state: S) -> None:
    assert not offer_still_wanted(OFFER, _desired(), DeviceProgress("d1", NEW, state))


def test_a_retargeted_unknown_or_untracked_device_drops_its_offer() -> None:
    downloading = DeviceProgress("d1", NEW, S.DOWNLOADING)
    assert not offer_still_wanted(OFFER, _desired(target=OLD), downloading)
    assert not offer_still_wanted(OFFER, _desired(), DeviceProgress("d1", OLD, S.DOWNLOADING))
    assert not offer_still_wanted(OFFER, _desired(), None)
    stranger = FirmwareOffer("tok", "ep-unknown", NEW, expires_at=1e12)
    assert not offer_still_wanted(stranger, _desired(), downloading)
