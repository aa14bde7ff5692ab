"""Convergence property: against a small pure model of an LwM2M device with faults drawn
by hypothesis, repeated diff -> decide -> apply ends in Current or a terminal state, never
executes one download twice, never re-writes a running download, and a converged device
yields no effects."""

from __future__ import annotations

from dataclasses import dataclass, field

from builders import NEW, T0, one_device, registration
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.engine import (
    EFFECTS,
    CancelDownload,
    EngineConfig,
    Execute,
    PushPackage,
    ReadState,
    Verify,
    WriteUri,
    decide,
    diff,
)
from reconciler.model.lwm2m import FirmwareState as F
from reconciler.model.lwm2m import UpdateResult as R
from reconciler.model.observed import DeviceProgress, DeviceReport
from reconciler.model.status import UpdateState as S

CONFIG = EngineConfig(backoff_base=10, min_download_time=50, seconds_per_block=0.01,
                      update_timeout=100, poll_interval=5)
TRANSIENT = {"lost": R.CONNECTION_LOST, "oom": R.OUT_OF_RAM}
TERMINAL = {"integrity": R.INTEGRITY_CHECK_FAILURE, "badtype": R.UNSUPPORTED_PACKAGE_TYPE}
FAULTS = ["ok", "lost", "oom", "silent", "integrity", "badtype", "fail8", "revert"]


@dataclass
class DeviceModel:
    faults: list[str]
    version: str = "1.0"
    fw: F = F.IDLE
    result: R = R.INITIAL
    registered_at: float = T0
    fault: str = "ok"
    executes: dict[int, int] = field(default_factory=dict)  # attempt -> Execute count
    attempt: int = 0

    def report(self, now: float) -> DeviceReport:
        return DeviceReport("ep-1", self.version, fw_state=self.fw, update_result=self.result,
                            reported_at=now)

    def start(self, attempt: int) -> None:
        assert self.fw is not F.DOWNLOADING, "re-wrote /5/0/1 during a running download"
        self.attempt, self.fw, self.result = attempt, F.DOWNLOADING, R.INITIAL
        self.fault = self.faults.pop(0) if self.faults else "ok"

    def tick(self) -> None:
        if self.fw is not F.DOWNLOADING or self.fault == "silent":
            return
        code = TRANSIENT.get(self.fault) or TERMINAL.get(self.fault)
        self.fw, self.result = (F.IDLE, code) if code else (F.DOWNLOADED, R.INITIAL)

    def execute(self, now: float) -> None:
        self.executes[self.attempt] = self.executes.get(self.attempt, 0) + 1
        self.fw = F.IDLE
        if self.fault == "fail8":
            self.result = R.UPDATE_FAILED
            return
        self.result, self.registered_at = R.SUCCESS, now + 1  # reboots, registers again
        if self.fault != "revert":
            self.version = NEW.version


def _apply(device: DeviceModel, actions: tuple[object, ...], now: float,
           report: DeviceReport) -> DeviceReport:
    for action in actions:
        if isinstance(action, WriteUri | PushPackage):
            device.start(action.attempt)
        elif isinstance(action, Execute):
            device.execute(now)
        elif isinstance(action, CancelDownload):
            device.fw, device.result = F.IDLE, R.INITIAL
        if isinstance(action, ReadState | Verify | CancelDownload | WriteUri | PushPackage):
            report = device.report(now)  # a read, or the notification a change causes
    return report


def _run(device: DeviceModel) -> DeviceProgress:
    state, progress = one_device(), None
    report = device.report(T0)
    for step in range(400):
        now = T0 + 1 + step * 7.0
        before = (device.fw, device.result)
        device.tick()
        if (device.fw, device.result) != before:  # Observe on /5/0/3 and /5/0/5 tells us
            report = device.report(now)
        delta = diff(state, "d1", report, registration(device.registered_at), observing=True)
        result = decide(delta, progress, now, config=CONFIG)
        progress = result.progress
        report = _apply(device, result.actions, now, report)
        assert progress is not None
        if progress.state is S.CURRENT or progress.state.terminal:
            return progress
    raise AssertionError(f"no convergence: {progress}")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(FAULTS), max_size=6))
def test_any_fault_sequence_converges_safely(faults: list[str]) -> None:
    device = DeviceModel(list(faults))
    final = _run(device)
    assert all(n == 1 for n in device.executes.values())
    assert (final.state is S.CURRENT) == (device.version == NEW.version)
    clean = faults[: CONFIG.max_retries + 1]
    if all(f in ("ok", "lost", "oom", "silent") for f in clean) and len(faults) <= 3:
        assert final.state is S.CURRENT


def test_a_converged_device_gets_no_effects() -> None:
    device = DeviceModel([])
    final = _run(device)
    report = device.report(T0 + 9999)
    delta = diff(one_device(), "d1", report, registration(device.registered_at))
    result = decide(delta, final, T0 + 9999, config=CONFIG)
    assert not any(isinstance(a, EFFECTS) for a in result.actions)
    assert result.progress is final
