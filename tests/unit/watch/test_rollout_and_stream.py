"""`fota status`'s pure parts: a /status body read as progress and outcome (success, halt,
failures, still moving), the SSE framing it reads, and the plain view's lines."""

from __future__ import annotations

import io
from typing import Any

import pytest

from reconciler.watch.client import Message, _parse
from reconciler.watch.render import PlainView
from reconciler.watch.rollout import Outcome, overall, progress


def status(*collections: dict[str, Any]) -> dict[str, Any]:
    return {"collections": list(collections)}


def coll(cid: str, states: dict[str, int], *, halted: bool = False, reason: str = "",
         management: str = "collection") -> dict[str, Any]:
    return {"collectionId": cid, "management": management, "devices": sum(states.values()),
            "states": states, "halted": halted, **({"haltReason": reason} if reason else {})}


@pytest.mark.parametrize("states,halted,expected", [
    ({"Current": 4}, False, Outcome.SUCCEEDED),
    ({"Current": 2, "Downloading": 1, "Pending": 1}, False, None),
    ({"Current": 3, "UpdateFailed": 1}, False, Outcome.FAILED),
    ({"Current": 1, "Reverted": 1, "TimedOut": 1}, False, None),  # TimedOut is retried
    ({"Current": 1, "UpdateFailed": 1, "Pending": 2}, True, Outcome.HALTED),
])
def test_a_collections_outcome_follows_its_states_and_halt(
        states: dict[str, int], halted: bool, expected: Outcome | None) -> None:
    [figures] = progress(status(coll("aaaa", states, halted=halted)))
    assert figures.outcome() is expected


def test_a_halt_anywhere_ends_the_watch_while_others_still_move() -> None:
    moving = coll("aaaa", {"Current": 1, "Downloading": 1})
    halted = coll("bbbb", {"UpdateFailed": 1, "Pending": 1}, halted=True, reason="why")
    assert overall(progress(status(moving, halted))) is Outcome.HALTED
    assert overall(progress(status(moving, coll("cccc", {"Current": 2})))) is None
    assert overall(progress(status(coll("cccc", {"Current": 2}),
                                   coll("dddd", {"Reverted": 1})))) is Outcome.FAILED
    assert [Outcome.SUCCEEDED.exit_code, Outcome.HALTED.exit_code,
            Outcome.FAILED.exit_code] == [0, 1, 1]


def test_disabled_and_other_collections_are_left_out() -> None:
    body = status(coll("aaaa", {"Current": 1}), coll("bbbb", {}, management="disabled"))
    assert [c.collection_id for c in progress(body)] == ["aaaa"]
    assert progress(body, only="bbbb") == []


def test_the_sse_framing_yields_messages_and_signs_of_life() -> None:
    raw = [b"retry: 2000\n", b"\n", b"id: 7\n", b'data: {"id": 7, "kind": "state"}\n',
           b"\n", b": keepalive\n", b"\n", b"id: 8\r\n", b"data: {\r\n", b'data: "id": 8}\r\n',
           b"\r\n"]
    assert list(_parse(iter(raw))) == [
        None, Message(7, {"id": 7, "kind": "state"}), None, Message(8, {"id": 8})]


def test_the_plain_view_prints_a_line_only_when_figures_change() -> None:
    out = io.StringIO()
    view = PlainView(out)
    first = progress(status(coll("aaaa", {"Current": 1, "Downloading": 1})))
    view.show(first)
    view.show(first)
    view.show(progress(status(coll("aaaa", {"Current": 1, "UpdateFailed": 1},
                                   halted=True, reason="1 of 2 failed"))))
    assert out.getvalue().splitlines() == [
        "aaaa: 1/2 Current, 1 in flight, 0 failed",
        "aaaa: 1/2 Current, 0 in flight, 1 failed, halted: 1 of 2 failed"]


def test_waves_from_status_show_as_their_own_lines_under_the_collection() -> None:
    body = coll("aaaa", {"Current": 3, "Pending": 2})
    body["rollout"] = {"waves": {"current": "rest", "stage": "running", "waves": [
        {"name": "canary", "members": 1, "current": 1, "failed": 0, "inFlight": 0},
        {"name": "the rest", "members": 4, "current": 2, "failed": 0, "inFlight": 1}]}}
    out = io.StringIO()
    PlainView(out).show(progress(status(body)))
    assert out.getvalue().splitlines() == [
        "aaaa: 3/5 Current, 0 in flight, 0 failed, wave rest (running)",
        "aaaa/canary: 1/1 Current, 0 in flight, 0 failed",
        "aaaa/the rest: 2/4 Current, 1 in flight, 0 failed"]
