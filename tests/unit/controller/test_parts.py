"""Pure parts of the controller: report merging, the rollout index, settings, flags."""

from __future__ import annotations

from dataclasses import fields

import pytest
from pydantic import ValidationError

from reconciler.controller.config import ControllerConfig
from reconciler.controller.reports import merge_report
from reconciler.controller.rollout import RolloutIndex
from reconciler.engine import EngineConfig, RolloutStats
from reconciler.model.desired import Collection, FailureThreshold, Management, RolloutPolicy
from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, Path, UpdateResult
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState
from reconciler.serve.cmd import split_host_port
from reconciler.serve.settings import ServeSettings, describe, setting_names


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
        "rollout halted: 3 of 12 devices failed (threshold 25%); to resume, raise rollout.retry")


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
    settings = ServeSettings.load({"workers": 2}, environ=env)
    assert (settings.engine_config().update_timeout, settings.tokens,
            settings.controller.workers) == (5.0, ("a", "b"), 2)
    assert settings.controller.engine.max_retries == EngineConfig().max_retries


def test_every_controller_and_engine_field_is_a_setting_under_its_own_name() -> None:
    names = dict(setting_names())
    wanted = [f.name for f in fields(EngineConfig)] + [
        f.name for f in fields(ControllerConfig) if f.name != "engine"]
    assert all(name in names for name in wanted)
    assert len(names) == len(set(names))  # no flat name is ambiguous


@pytest.mark.parametrize(("overrides", "message"), [
    ({"workers": 0}, "invalid workers: Input should be greater than or equal to 1, got 0"),
    ({"update_timeout": 0}, "invalid update_timeout: Input should be greater than 0, got 0.0"),
    ({"block_size": 8},
     "invalid block_size: Input should be greater than or equal to 16, got 8"),
    ({"backoff_base": -1},
     "invalid backoff_base: Input should be greater than or equal to 0, got -1.0"),
    ({"http_port": 70000},
     "invalid http_port: Input should be less than or equal to 65535, got 70000"),
])
def test_bad_settings_are_refused_with_the_field_named(overrides: dict[str, object],
                                                       message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ServeSettings.load(overrides, environ={})
    assert describe(caught.value, environ={}) == message


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
