"""`Departures` (reconciler/lwm2m/departures.py): which waits a device's new address
ends, and that a finished wait leaves nothing behind."""

from __future__ import annotations

from reconciler.lwm2m.departures import Departures, same_remote


async def test_only_waits_at_another_address_end() -> None:
    departures = Departures()
    with departures.watch("dev", ("10.0.0.1", 5683)) as old, \
            departures.watch("dev", ("10.0.0.2", 5683)) as current, \
            departures.watch("other", ("10.0.0.1", 5683)) as others:
        assert departures.moved("dev", ("10.0.0.2", 5683)) == 1
        assert old.done() and not current.done() and not others.done()
        assert departures.moved("dev", ("10.0.0.2", 5683)) == 0  # once is enough
        assert len(departures) == 3
    assert len(departures) == 0
    assert current.cancelled()  # its request ended: nothing waits on it


def test_remotes_of_different_kinds_are_never_the_same() -> None:
    class Session:
        def __eq__(self, other: object) -> bool:
            raise AttributeError("aiocoap compares sockaddrs")

        __hash__ = object.__hash__

    session = Session()
    assert same_remote(session, session)
    assert not same_remote(session, ("10.0.0.1", 5683))
    assert same_remote(("10.0.0.1", 5683), ("10.0.0.1", 5683))
