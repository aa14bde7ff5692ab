"""Ownership of a device by a node, at an epoch, and the writes fenced by it; slots
counted in the store (issue 13): the SQLite half of what several nodes share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import NoSlot, NotOwner
from reconciler.model.cluster import Fence, SlotClaim
from reconciler.model.lwm2m import NO_FORMATS, Registration
from reconciler.model.observed import DeviceEvent, DeviceProgress, DeviceReport
from reconciler.model.status import Condition, ConditionType, UpdateState
from reconciler.store import SqliteStore, open_reader


def _reg(endpoint: str, port: int = 5700, updated_at: float = 100.0) -> Registration:
    return Registration(f"id-{port}", endpoint, "127.0.0.1", port, 60, "1.2", "U", False,
                        ("/3/0", "/5/0"), updated_at, updated_at)


V2 = "17dh0cf43jfh08"  # the fleet fixture's target image
Fleet = Any  # the `fleet` fixture (conftest cannot be imported)


def _executing(device_id: str) -> DeviceProgress:
    return DeviceProgress(device_id, V2, UpdateState.UPDATING, "executing",
                          attempts=1, executed_at=150.0, updated_at=150.0)


def test_a_register_at_another_node_moves_the_device_to_a_new_epoch(
        store: SqliteStore) -> None:
    first = store.claim_registration(_reg("ep-0"), NO_FORMATS, "node-a")
    assert store.claim_registration(_reg("ep-0", 5701), NO_FORMATS, "node-a") == first
    moved = store.claim_registration(_reg("ep-0", 5702), NO_FORMATS, "node-b")
    back = store.claim_registration(_reg("ep-0", 5703), NO_FORMATS, "node-a")
    assert first < moved < back  # node-a's first epoch never comes back


def test_the_record_before_execute_lands_only_while_its_node_owns_the_device(
        store: SqliteStore, fleet: Fleet) -> None:
    store.apply_desired(fleet.snapshot(1))
    epoch = store.claim_registration(_reg("ep-0"), NO_FORMATS, "node-a")
    store.claim_registration(_reg("ep-0", 5701), NO_FORMATS, "node-b")
    event = DeviceEvent("dev0000", 150.0, "state", "executing", "r1")
    with pytest.raises(NotOwner, match="owned by node-b"):
        store.put_progress(_executing("dev0000"), (event,), durable=True,
                           fence=Fence("ep-0", "node-a", epoch))
    assert store.progress("dev0000") is None  # neither the record nor its event
    assert store.events_after(0) == []


def test_a_fenced_write_of_the_owner_at_its_epoch_lands(
        store: SqliteStore, fleet: Fleet) -> None:
    store.apply_desired(fleet.snapshot(1))
    epoch = store.claim_registration(_reg("ep-0"), NO_FORMATS, "node-a")
    store.put_progress(_executing("dev0000"), durable=True,
                       fence=Fence("ep-0", "node-a", epoch))
    assert store.progress("dev0000") == _executing("dev0000")


def test_a_device_whose_registration_is_gone_refuses_every_fence(store: SqliteStore) -> None:
    epoch = store.claim_registration(_reg("ep-0"), NO_FORMATS, "node-a")
    store.delete_registration("ep-0", node="node-a")
    with pytest.raises(NotOwner, match="no registration"):
        store.put_progress(_executing("dev0000"), fence=Fence("ep-0", "node-a", epoch))


def test_an_update_or_expiry_at_a_node_that_lost_the_device_leaves_the_owners_row(
        store: SqliteStore) -> None:
    store.claim_registration(_reg("ep-0", 5700), NO_FORMATS, "node-a")
    store.claim_registration(_reg("ep-0", 5900), NO_FORMATS, "node-b")
    store.put_registration(_reg("ep-0", 5700, updated_at=120.0), node="node-a")
    store.delete_registration("ep-0", node="node-a")
    assert [(r.port, r.updated_at) for r in store.registrations()] == [(5900, 100.0)]
    store.put_registration(_reg("ep-0", 5900, updated_at=130.0), node="node-b")
    assert [r.updated_at for r in store.registrations()] == [130.0]


def test_a_restart_resumes_the_live_registrations_its_node_may_drive(
        store: SqliteStore, state: Path | str) -> None:
    """A SQLite file has one writer: every live registration in it is the restarted
    node's, under a new epoch. A shared database: only those it still owns."""
    if not isinstance(state, Path):
        store.claim_registration(_reg("ep-9"), NO_FORMATS, "node-b")
        mine = store.claim_registration(_reg("ep-0"), NO_FORMATS, "node-a")
        assert store.adopt_registrations("node-a", now=130.0) == {"ep-0": mine}
        return
    old = store.claim_registration(_reg("ep-0"), NO_FORMATS, "host-111")
    store.claim_registration(_reg("ep-1", updated_at=0.0), NO_FORMATS, "host-111")  # expired
    adopted = store.adopt_registrations("host-222", now=130.0)
    assert list(adopted) == ["ep-0"] and adopted["ep-0"] > old
    store.put_progress(_executing("dev0000"), fence=Fence("ep-0", "host-222", adopted["ep-0"]))


def test_a_start_takes_a_slot_only_while_fewer_than_the_limit_are_in_flight(
        store: SqliteStore, fleet: Fleet) -> None:
    store.apply_desired(fleet.snapshot(3))
    claim = SlotClaim(fleet.cid, limit=2)
    for n in (0, 1):
        store.put_progress(_executing(f"dev000{n}"), slot=claim)
    with pytest.raises(NoSlot, match="2 of max 2 updating on all nodes"):
        store.put_progress(_executing("dev0002"), slot=claim)
    assert store.progress("dev0002") is None
    store.put_progress(_executing("dev0002"), slot=SlotClaim(fleet.cid, limit=3))
    done = DeviceProgress("dev0000", fleet.v2, UpdateState.CURRENT, updated_at=160.0)
    store.put_progress(done)  # a slot freed: the next start of limit 3 fits again
    store.put_progress(_executing("dev0000").evolve(attempts=2), slot=SlotClaim(fleet.cid, 3))


def test_a_revision_retargets_only_the_devices_no_other_node_owns(
        store: SqliteStore, fleet: Fleet, state: Path | str) -> None:
    store.apply_desired(fleet.snapshot(3))
    store.claim_registration(_reg("ep-0"), NO_FORMATS, "node-a")
    store.claim_registration(_reg("ep-1"), NO_FORMATS, "node-b")
    theirs = _executing("dev0001")
    store.put_progress(theirs)  # node-b's device, mid-update
    updating = Condition(ConditionType.RECONCILING, True, "Downloading", "", 150.0, "r1")
    store.put_conditions("dev0001", [updating])
    retargeted = [(DeviceProgress(f"dev000{n}", V2, UpdateState.PENDING, updated_at=200.0),
                   (DeviceEvent(f"dev000{n}", 200.0, "retarget", "new target", "r2"),))
                  for n in range(3)]
    store.put_progress_many(retargeted, node="node-a")
    pending = Condition(ConditionType.RECONCILING, True, "Pending", "", 200.0, "r2")
    store.put_conditions_many([(f"dev000{n}", [pending]) for n in range(3)]
                              + [(fleet.cid, [pending])], node="node-a")
    assert store.progress("dev0001") == theirs
    assert [e.device_id for e in store.events_after(0)] == ["dev0000", "dev0002"]
    assert store.progress("dev0002") == retargeted[2][0]
    reader = open_reader(state)  # node-b's conditions too stay node-b's
    try:
        assert [reader.conditions(s) for s in ("dev0000", "dev0001", "dev0002", fleet.cid)
                ] == [[pending], [updating], [pending], [pending]]
    finally:
        reader.close()


def test_a_write_about_a_device_not_registered_here_lands_unless_another_node_has_it(
        store: SqliteStore, fleet: Fleet) -> None:
    store.apply_desired(fleet.snapshot(1))
    loose = Fence("ep-0", "node-a", 0, strict=False)
    store.put_progress(_executing("dev0000"), fence=loose)  # registered nowhere
    store.claim_registration(_reg("ep-0"), NO_FORMATS, "node-b")
    with pytest.raises(NotOwner, match="owned by node-b"):
        store.put_progress(_executing("dev0000").evolve(attempts=2), fence=loose)


def test_a_report_from_a_node_that_lost_the_device_is_refused(
        store: SqliteStore, fleet: Fleet) -> None:
    """A read or a notification answered at the old node after a Register moved the
    device on: its report must not overwrite the new owner's (the new owner's reads
    decide what the device runs). Soft fence, as the controller writes it: a device
    registered nowhere still gets its report."""
    store.apply_desired(fleet.snapshot(2))
    old = store.claim_registration(_reg("ep-0"), NO_FORMATS, "node-a")
    new = store.claim_registration(_reg("ep-0", 5701), NO_FORMATS, "node-b")
    theirs = DeviceReport("ep-0", firmware_version="2.0", reported_at=200.0)
    store.put_report("dev0000", theirs, fence=Fence("ep-0", "node-b", new, strict=False))
    stale = DeviceReport("ep-0", firmware_version="1.0", reported_at=210.0)
    with pytest.raises(NotOwner):
        store.put_report("dev0000", stale, fence=Fence("ep-0", "node-a", old, strict=False))
    nowhere = DeviceReport("ep-1", firmware_version="1.0", reported_at=220.0)
    store.put_report("dev0001", nowhere, fence=Fence("ep-1", "node-a", 0, strict=False))
    assert store.report("dev0000") == theirs
    assert store.report("dev0001") == nowhere
