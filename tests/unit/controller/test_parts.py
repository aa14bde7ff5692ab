"""Pure parts of the controller: report merging, the rollout index, settings, flags."""

from __future__ import annotations

import pytest

from reconciler.controller.reports import merge_report
from reconciler.controller.rollout import RolloutIndex
from reconciler.engine import RolloutStats
from reconciler.model.desired import Collection, FailureThreshold, Management, RolloutPolicy
from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, Path, UpdateResult
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState
from reconciler.serve.cmd import split_host_port
from reconciler.serve.settings import ControllerSettings


def test_a_read_of_objects_3_and_5_fills_the_report() -> None:
    values = {Path(3, 0, 3): "2.0 ", Path(3, 0, 2): "SN1", Path(5, 0, 3): 2,
              Path(5, 0, 5): 0, Path(5, 0, 9): 1, Path(5, 0, 1): "coap://x"}
    report = merge_report(None, "ep", values, 5.0)
    assert report == DeviceReport("ep", "2.0 ", "SN1", fw_state=FirmwareState.DOWNLOADED,
                                  update_result=UpdateResult.INITIAL,
                                  delivery_method=DeliveryMethod.PUSH_ONLY, reported_at=5.0)


def test_a_notification_updates_only_what_it_carries() -> None:
    before = DeviceReport("ep", "1.0", fw_state=FirmwareState.DOWNLOADING, reported_at=1.0)
    after = merge_report(before, "ep", {Path(5, 0, 5): 4}, 2.0)
    assert (after.firmware_version, after.fw_state, after.update_result) == (
        "1.0", FirmwareState.DOWNLOADING, UpdateResult.CONNECTION_LOST)


def test_malformed_values_leave_the_previous_ones() -> None:
    before = DeviceReport("ep", "1.0", fw_state=FirmwareState.IDLE)
    after = merge_report(before, "ep", {Path(5, 0, 3): "idle?"}, 3.0)
    assert after.fw_state is FirmwareState.IDLE and after.reported_at == 3.0


def test_the_rollout_index_counts_in_flight_started_and_failed_incrementally() -> None:
    index = RolloutIndex()
    p = DeviceProgress("d1", "img", UpdateState.DOWNLOADING, attempts=1)
    index.put("c", p)
    index.put("c", DeviceProgress("d2", "img", UpdateState.PENDING))
    assert index.stats("c", "img") == RolloutStats(in_flight=1, started=1, failed=0,
                                                   population=2)
    index.put("c", p.evolve(state=UpdateState.UPDATE_FAILED))
    assert index.stats("c", "img") == RolloutStats(in_flight=0, started=1, failed=1,
                                                   population=2)
    index.remove("d1")
    assert index.stats("c", "img") == RolloutStats(population=1)
    index.remove("d2")
    assert index.stats("c", "img") == RolloutStats()


def test_the_population_is_the_devices_needing_the_collections_target() -> None:
    index = RolloutIndex()
    index.put("c", DeviceProgress("d1", "img", UpdateState.PENDING))  # never seen yet
    index.put("c", DeviceProgress("d2", "img", UpdateState.CURRENT))  # found on it
    index.put("c", DeviceProgress("d3", "img", UpdateState.CURRENT, attempts=1))  # updated
    index.put("c", DeviceProgress("d4", "other", UpdateState.PENDING))  # its own target
    assert index.stats("c", "img").population == 2
    assert index.stats("c", "other").population == 1


def test_a_percentage_threshold_does_not_halt_a_large_rollout_on_its_first_failure() -> None:
    threshold = FailureThreshold(percent=25.0)
    coll = Collection("c", management=Management.COLLECTION, target_image_id="img",
                      rollout=RolloutPolicy(max_concurrent=2, failure_threshold=threshold))
    index = RolloutIndex()
    index.load(("c", DeviceProgress(f"d{n}", "img", UpdateState.PENDING)) for n in range(12))
    index.put("c", DeviceProgress("d0", "img", UpdateState.UPDATE_FAILED, attempts=1))
    index.put("c", DeviceProgress("d1", "img", UpdateState.DOWNLOADING, attempts=1))
    assert index.gate(coll).may_start
    for n in (1, 2):
        index.put("c", DeviceProgress(f"d{n}", "img", UpdateState.REVERTED, attempts=1))
    halted = index.status(coll, "rev")
    assert halted["halted"] is True and halted["population"] == 12
    assert str(halted["reason"]).startswith(
        "rollout halted: 3 of 12 devices failed (threshold 25%); to resume, change the target")


def test_the_gate_closes_at_max_concurrent() -> None:
    index = RolloutIndex()
    coll = Collection("c", management=Management.COLLECTION, target_image_id="img",
                      rollout=RolloutPolicy(max_concurrent=1))
    assert index.gate(coll).may_start
    index.put("c", DeviceProgress("d1", "img", UpdateState.UPDATING, attempts=1))
    assert not index.gate(coll).may_start
    assert index.status(coll, "rev")["inFlight"] == 1


def test_settings_come_from_defaults_then_environment_then_flags() -> None:
    env = {"FOTA_UPDATE_TIMEOUT": "5", "FOTA_TOKENS": "a,b", "FOTA_WORKERS": "8"}
    settings = ControllerSettings.load({"workers": 2}, environ=env)
    assert (settings.update_timeout, settings.tokens, settings.workers) == (5.0, ("a", "b"), 2)
    assert settings.engine_config().update_timeout == 5.0


def test_bad_settings_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="workers"):
        ControllerSettings.load({"workers": 0}, environ={})


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:5683", ("127.0.0.1", 5683)), ("[::1]:8080", ("::1", 8080)),
    ("localhost:0", ("localhost", 0)),
])
def test_host_port_flags_parse(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["5683", "host:", ":80", "host:http"])
def test_malformed_host_port_flags_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_host_port(text)
