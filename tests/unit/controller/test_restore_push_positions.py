"""Which push positions a restarted server resumes from: only a push still under way to
the device's present target, of the same bytes (image id, digest and length). Anything
that ended, failed, was retargeted or whose image changed starts at block 0."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from reconciler.controller.push_log import PushLog, position_still_wanted
from reconciler.lwm2m.pushes import Pushes
from reconciler.model.desired import Collection, DesiredState, Device, FirmwareImage, Management
from reconciler.model.lwm2m import PushPosition
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState as S
from reconciler.store import open_store

CID, OLD, NEW = "c1", "img-old", "img-new"
DIGEST = "ab" * 32


def _desired(target: str = NEW, digest: str = DIGEST, length: int = 9000) -> DesiredState:
    images = {OLD: FirmwareImage(OLD, CID, "1.0", "1.0.bin", "00" * 32, 10, 0, "1.0.bin"),
              NEW: FirmwareImage(NEW, CID, "2.0", "2.0.bin", digest, length, 0, "2.0.bin")}
    return DesiredState("r", {CID: Collection(CID, "c", Management.COLLECTION, target)},
                        images, {"d1": Device("d1", CID, "ep1")})


POSITION = PushPosition("ep1", NEW, DIGEST, 9000, 6, 4096, 1.0)


@pytest.mark.parametrize("state", [S.INITIALIZING, S.DOWNLOADING])
def test_a_push_under_way_to_the_present_target_is_resumed_from(state: S) -> None:
    assert position_still_wanted(POSITION, _desired(), DeviceProgress("d1", NEW, state))


@pytest.mark.parametrize("state", [S.PENDING, S.DOWNLOADED, S.UPDATING, S.COMPLETED,
                                   S.CURRENT, S.UPDATE_FAILED, S.TIMED_OUT, S.REVERTED])
def test_an_update_past_or_out_of_its_push_drops_its_position(state: S) -> None:
    assert not position_still_wanted(POSITION, _desired(), DeviceProgress("d1", NEW, state))


def test_other_bytes_a_retarget_an_unknown_or_untracked_device_drop_it() -> None:
    pushing = DeviceProgress("d1", NEW, S.DOWNLOADING)
    assert not position_still_wanted(POSITION, _desired(digest="cd" * 32), pushing)
    assert not position_still_wanted(POSITION, _desired(length=9001), pushing)
    assert not position_still_wanted(POSITION, _desired(target=OLD), pushing)
    assert not position_still_wanted(POSITION, _desired(),
                                     DeviceProgress("d1", OLD, S.DOWNLOADING))
    assert not position_still_wanted(POSITION, _desired(), None)
    assert not position_still_wanted(replace(POSITION, endpoint="ep-unknown"), _desired(),
                                     pushing)
    assert not position_still_wanted(replace(POSITION, image_id="img-gone"), _desired(),
                                     pushing)


def test_restore_gives_the_wanted_positions_to_the_server_and_deletes_the_rest(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    try:
        store.put_progress(DeviceProgress("d1", NEW, S.DOWNLOADING))
        stale = replace(POSITION, endpoint="ep-unknown")
        store.put_push_positions([POSITION, stale])
        pushes = Pushes(lambda: 1.0)
        server = SimpleNamespace(pushes=pushes)  # all restore asks of Lwm2mServer
        assert PushLog(store).restore(server, _desired()) == 1
        assert store.push_positions() == [POSITION]  # the stale row is deleted
        with pushes.pushing("ep1", NEW, 9000, resume=True, digest=DIGEST) as transfer:
            assert transfer.block == 4
        # another node's push (several nodes on one store) is neither taken nor deleted
        assert PushLog(store).restore(server, _desired(),
                                      owned=lambda endpoint: False) == 0
        assert store.push_positions() == [POSITION]
    finally:
        store.close()
