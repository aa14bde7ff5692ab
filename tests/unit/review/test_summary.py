"""`fota plan`: per collection, who moves from which image to which, and who is blocked."""

from __future__ import annotations

from reconciler.model.desired import (
    Collection,
    DesiredState,
    Device,
    FirmwareImage,
    Management,
    RolloutPolicy,
)
from reconciler.review.summary import render, summarize
from reconciler.store import DeviceView

V1 = FirmwareImage("aaaa", "cc", "1.0", "a.bin", "a" * 64, 10, 1, "images/a.bin")
V2 = FirmwareImage("bbbb", "cc", "2.0", "b.bin", "b" * 64, 10, 1, "images/b.bin")


def _desired(management: Management = Management.COLLECTION, paused: bool = False) -> DesiredState:
    coll = Collection("cc", "fleet", management, "bbbb", rollout=RolloutPolicy(paused=paused))
    devices = {f"d{n}": Device(f"d{n}", "cc", f"ep{n}") for n in range(5)}
    return DesiredState("rev", {"cc": coll}, {"aaaa": V1, "bbbb": V2}, devices)


def _view(device_id: str, version: str | None, state: str | None = None,
          target: str | None = None) -> DeviceView:
    return DeviceView(device_id, "cc", {}, None, target, version, None, None, None, state, None)


OBSERVED = {
    "d0": _view("d0", "1.0"), "d1": _view("d1", "1.0"), "d2": _view("d2", "2.0"),
    "d3": _view("d3", "1.0", "UpdateFailed", "bbbb"),
}


def test_devices_are_counted_by_move_current_and_blocked_reason() -> None:
    [plan] = summarize(_desired(), OBSERVED)
    assert dict(plan.moves) == {("1.0", "2.0"): 2, ("unreported", "2.0"): 1}
    assert plan.current == 1
    assert dict(plan.blocked) == {"UpdateFailed holds until the target changes": 1}


def test_disabled_and_paused_collections_block_every_move() -> None:
    [off] = summarize(_desired(Management.DISABLED), OBSERVED)
    assert dict(off.blocked) == {"firmware management disabled": 5} and not off.moves
    [paused] = summarize(_desired(paused=True), OBSERVED)
    assert paused.blocked["rollout paused"] == 3


def test_the_text_rendering_reads_as_a_plan() -> None:
    text = render(summarize(_desired(), OBSERVED))
    assert text.splitlines() == [
        "collection cc (fleet): management collection, target 2.0",
        "  2 devices move 1.0 -> 2.0",
        "  1 device move unreported -> 2.0",
        "  1 already on target",
        "  1 blocked: UpdateFailed holds until the target changes",
    ]
