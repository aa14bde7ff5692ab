"""`Pushes`: what the server knows of its pushes: running, how far each came, how the
latest one stopped; bounded by the endpoints that were pushed to."""

from __future__ import annotations

import pytest

from reconciler.errors import DeviceRequestFailed, DeviceTimeout, TemporaryError
from reconciler.lwm2m.pushes import Pushes
from reconciler.model.observed import PushStop

NOW = 500.0


def test_a_stopped_push_is_recorded_told_and_resumed_where_the_device_left_off() -> None:
    pushes, told = Pushes(lambda: NOW), []
    pushes.subscribe(told.append)
    with pytest.raises(DeviceTimeout), pushes.pushing("ep", "img", 5000,
                                                      resume=False) as transfer:
        assert pushes.running("ep")
        transfer.offset = 3072  # three 1024-byte blocks acknowledged
        raise DeviceTimeout("silent")
    assert not pushes.running("ep") and told == ["ep"]
    assert pushes.stop("ep") == PushStop(NOW, 3, 5, "silent")
    with pushes.pushing("ep", "img", 5000, resume=True) as again:
        assert again.offset == 3072
        assert pushes.stop("ep") is None  # a push runs again: the stop is history
        again.offset = 5000
    assert pushes.stop("ep") is None and len(pushes) == 0  # done: nothing kept


def test_another_package_or_a_fresh_push_starts_at_block_0() -> None:
    pushes = Pushes(lambda: NOW)
    for package, size, resume in (("other", 5000, True), ("img", 4000, True),
                                  ("img", 5000, False)):
        with pytest.raises(TemporaryError), pushes.pushing("ep", "img", 5000,
                                                           resume=False) as transfer:
            transfer.offset = 2048
            raise TemporaryError("lost")
        with pushes.pushing("ep", package, size, resume=resume) as transfer:
            assert transfer.offset == 0, (package, size, resume)


def test_a_refused_push_leaves_nothing_to_resume_and_one_push_runs_at_a_time() -> None:
    pushes = Pushes(lambda: NOW)
    with pytest.raises(DeviceRequestFailed), pushes.pushing("ep", "img", 100, resume=False):
        with pytest.raises(TemporaryError, match="already running"), pushes.pushing(
                "ep", "img", 100, resume=False):
            pass
        raise DeviceRequestFailed("/5/0/0", "4.13", "too large")
    assert pushes.stop("ep") is None and len(pushes) == 0


def test_an_endpoint_that_went_away_is_forgotten() -> None:
    pushes = Pushes(lambda: NOW)
    with pytest.raises(DeviceTimeout), pushes.pushing("ep", "img", 100, resume=False):
        raise DeviceTimeout("silent")
    assert len(pushes) == 2
    pushes.forget("ep")
    assert pushes.stop("ep") is None and len(pushes) == 0
