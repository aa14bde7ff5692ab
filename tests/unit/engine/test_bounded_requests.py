"""Every branch of the engine is bounded (issue 8 item 3), shown over scripted devices.

Hypothesis scripts a device's answer to every request it gets: any /5/0/3 state (known
or not), any Update Result, any version, a CoAP error, or silence (the request times
out); an Execute may make it register again. The real `decide()` runs in a model of the
controller's loop (the executor's requests per action, the work queue's step cap,
requeue floor, error backoff and resync, all with their real values and the engine's
default timings) on an injected clock. A device may take its package by push (/5/0/9 = 1):
a push it does not answer, or that it cuts by registering again (a reboot, a new
address), stops (as the LwM2M layer records it) and the engine resumes it. No device
ever gets more than 60 requests in any minute, and each ends Current, terminal, or
waiting with a time to look again.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from builders import T0, one_device, registration
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.controller.config import ControllerConfig
from reconciler.controller.core import MAX_STEPS, MIN_REQUEUE, STEP_CAP_DELAY
from reconciler.engine import DEFAULT_CONFIG, Decision, decide, diff
from reconciler.engine import actions as act
from reconciler.model.lwm2m import DeliveryMethod, FirmwareState, UpdateResult
from reconciler.model.observed import DeviceProgress, DeviceReport, PushStop
from reconciler.model.status import UpdateState

LOOP = ControllerConfig()
LATENCY = 0.02  # an answered request
HORIZON = 3 * 3600.0  # long enough for every retry, backoff and timeout to run out
LIMIT = 60  # requests per device in any minute
MAX_TRANSMIT_WAIT = 93.0  # RFC 7252: the longest a block's exchange waits for an answer


@dataclass(frozen=True)
class Answer:
    kind: str  # "ok", "error" (a 4.xx/5.xx) or "silent" (no answer: times out)
    fw: int | None = None  # /5/0/3 (None: absent from the answer)
    result: int = 0  # /5/0/5
    version: str = "1.0"  # /3/0/3
    reboot: bool = False  # after an Execute: registers again


ANSWERS = st.one_of(
    st.builds(Answer, st.just("ok"), st.sampled_from([None, 0, 1, 2, 3, 9]),
              st.integers(0, 12), st.sampled_from(["1.0", "2.0", "junk"]), st.booleans()),
    st.just(Answer("error")),
    st.just(Answer("silent")),
)


class Failed(Exception):
    """A request the real executor would raise for: the work queue backs off."""


@dataclass
class Device:
    script: list[Answer]
    sent: list[float] = field(default_factory=list)  # when each request reached it
    looks: list[float] = field(default_factory=list)  # when the controller reconciled it
    registered_at: float = T0
    push: bool = False  # /5/0/9 = 1: the package is pushed to it
    # Never answers a push, which stops after this many seconds (None: as scripted)
    push_patience: float | None = None
    pushes: list[int] = field(default_factory=list)  # the attempt of each push
    # Registers again (a reboot, a new address) as each push starts: the server cuts it
    push_moves: bool = False

    def answer(self, now: float) -> Answer:
        self.sent.append(now)
        return self.script[(len(self.sent) - 1) % len(self.script)]


@dataclass
class Loop:
    """The controller's loop and executor over one device, on an injected clock."""

    device: Device
    now: float = T0
    report: DeviceReport | None = None
    progress: DeviceProgress | None = None
    last: Decision | None = None
    observing: bool = False
    can_observe: bool = True
    by_resource: bool = False  # refused an Observe of /5/0: its resources one by one
    # The server's word that the package went out: set the moment a URI write or a push
    # succeeds (the earliest the engine's checks after a delivery could start)
    delivered_at: float | None = None
    push_stop: PushStop | None = None  # how the latest push stopped (`lwm2m.pushes`)

    def request(self, timeout: float = LOOP.request_timeout) -> Answer:
        answer = self.device.answer(self.now)
        self.now += timeout if answer.kind == "silent" else LATENCY
        return answer

    @staticmethod
    def values(answer: Answer, fields: tuple[str, ...]) -> dict[str, object]:
        known = {"firmware_version": answer.version, "update_result": answer.result,
                 "fw_state": answer.fw}
        return {k: v for k, v in known.items() if k in fields and v is not None}

    def merge(self, values: dict[str, object], unknown: tuple[str, ...] = ()) -> None:
        typed = {k: (FirmwareState(v) if k == "fw_state" else
                     UpdateResult(v) if k == "update_result" else v)
                 for k, v in values.items() if isinstance(v, int | str)}
        base = self.report or DeviceReport("ep-1")
        if self.device.push:
            typed["delivery_method"] = DeliveryMethod.PUSH_ONLY
        self.report = base.with_values(reported_at=self.now, **typed,
                                       **dict.fromkeys(unknown))

    def read_state(self, verify: str | None = None) -> None:
        """Executor.read_state: /3/0 and /5/0; `verify` (Executor._verify): /5/0 only
        if /3/0/3 does not report that version (then /5/0's fields are unknown)."""
        values = self.read_instance(("firmware_version",))
        if verify is not None and values.get("firmware_version") == verify:
            self.merge(values, unknown=("fw_state", "update_result"))
            return
        self.merge({**values, **self.read_instance(("fw_state", "update_result"))})

    def read_instance(self, instance: tuple[str, ...]) -> dict[str, object]:
        """Executor._read_instance: one read, one resource at a time after a 4.xx."""
        answer = self.request()
        if answer.kind == "silent":
            raise Failed("read timed out")
        if answer.kind == "ok":
            return self.values(answer, instance)
        values: dict[str, object] = {}
        for one in instance:
            each = self.request()
            if each.kind != "ok":
                raise Failed("read failed")
            values.update(self.values(each, (one,)))
        return values

    def probe(self) -> None:
        """Executor._probe: three resources; a refusal skips one, silence ends it."""
        values: dict[str, object] = {}
        for one in ("fw_state", "update_result", "firmware_version"):
            answer = self.request()
            if answer.kind == "silent":
                break
            if answer.kind == "ok":
                values.update(self.values(answer, (one,)))
        if values:
            self.merge(values)

    def run(self, action: act.Action) -> None:
        if isinstance(action, act.ReadState) and action.firmware_only:
            self.merge(self.read_instance(("fw_state", "update_result")))
        elif isinstance(action, act.ReadState):
            self.read_state()
        elif isinstance(action, act.Verify):
            self.read_state(verify=action.version)
        elif isinstance(action, act.Probe):
            self.probe()
        elif isinstance(action, act.Observe):
            self.observe(action)
        elif isinstance(action, act.Execute):
            answer = self.request(LOOP.execute_timeout)
            if answer.kind == "error":
                raise Failed("execute refused")
            if answer.kind == "ok" and answer.reboot:
                self.device.registered_at = self.now
                self.observing, self.can_observe = False, True
                self.delivered_at = None  # the server forgets it with the registration
        elif isinstance(action, act.PushPackage):
            self.push(action)
        elif isinstance(action, act.WriteUri | act.CancelDownload):
            if self.request().kind != "ok":
                raise Failed("write failed")
            if not isinstance(action, act.CancelDownload):
                self.delivered_at = self.now
        else:
            assert isinstance(action, act.Wait | act.NoOp)

    def observe(self, action: act.Observe) -> None:
        """Executor._observe: Watches.start (/5/0 in one request unless the device
        refused that once, then each resource; the first answer of each is a read), and
        with `read` a read of /5/0 when the instance was not observed. It never
        notifies: polls must still come."""
        if not self.watch(action) and action.read:
            self.merge(self.read_instance(("fw_state", "update_result")))

    def watch(self, action: act.Observe) -> bool:
        if not self.by_resource:
            answer = self.request()
            if answer.kind == "silent":
                raise Failed("observe timed out")
            if answer.kind == "ok":
                self.merge(self.values(answer, ("fw_state", "update_result")))
                self.observing = True
                return True
            self.by_resource = True
        for one in ("fw_state", "update_result")[:len(action.paths)]:
            answer = self.request()
            if answer.kind == "silent":
                raise Failed("observe timed out")
            if answer.kind == "error":
                self.can_observe = False
                return False
            self.merge(self.values(answer, (one,)))
        self.observing = True
        return False

    def push(self, action: act.PushPackage) -> None:
        """Executor._push: silence stops the push (recorded, not raised), an error code
        fails the reconcile, an answer delivers the package."""
        self.device.pushes.append(action.attempt)
        if self.device.push_moves:  # cut by its Register (a stop), which is a trigger
            self.now += LATENCY
            self.push_stop = PushStop(self.now, 0, 1, "the device registered again")
            self.device.registered_at = self.now
            self.observing, self.delivered_at = False, None
            return
        patience = self.device.push_patience
        answer = self.request(min(action.timeout, patience or MAX_TRANSMIT_WAIT))
        if patience is not None:
            self.now += min(action.timeout, patience) - LATENCY
            answer = Answer("silent")
        if answer.kind == "silent":
            self.push_stop = PushStop(self.now, 0, 1, "the device stopped answering")
        elif answer.kind == "error":
            raise Failed("push refused")
        else:
            self.delivered_at = self.now

    def reconcile(self) -> float | None:
        """Controller.reconcile_device: seconds until the next look (None: a trigger)."""
        for _ in range(MAX_STEPS):
            delta = diff(one_device(), "d1", self.report, registration(self.device.registered_at),
                         observing=self.observing, can_observe=self.can_observe,
                         server_started=T0 - 1, delivered_at=self.delivered_at,
                         push_stop=self.push_stop)
            self.last = decide(delta, self.progress, self.now, config=DEFAULT_CONFIG)
            self.progress = self.last.progress
            if self.last.settled:
                wake = self.last.wake_at
                return None if wake is None else max(wake - self.now, MIN_REQUEUE)
            for action in self.last.actions:
                self.run(action)
        return STEP_CAP_DELAY


def drive(device: Device, report: DeviceReport | None = None) -> tuple[Loop, bool]:
    """The work queue over one device until HORIZON; (loop, whether it ended in error
    backoff). Also counts reconciles: a decision that asks to look again at once, with
    or without a request, would show as a burst of them. `report`: what the server
    holds of the device at the start (None: nothing, it reads first)."""
    loop, due, failures, resync = Loop(device, report=report), T0, 0, T0 + LOOP.resync_interval
    end = T0 + HORIZON
    while True:
        at = resync if due is None else min(due, resync)
        if at >= end:
            return loop, failures > 0
        loop.now = max(loop.now, at)
        device.looks.append(loop.now)
        while resync <= loop.now:
            resync += LOOP.resync_interval
        registered = device.registered_at
        try:
            after = loop.reconcile()
            failures = 0
            due = None if after is None else loop.now + after
        except Failed:
            failures += 1
            due = loop.now + min(LOOP.error_backoff_max, LOOP.error_backoff * 2 ** (failures - 1))
        if device.registered_at != registered:
            due = loop.now  # a Register is a trigger: looked at again at once


def busiest_minute(times: list[float]) -> int:
    return max((bisect.bisect_left(times, t + 60.0) - i for i, t in enumerate(times)),
               default=0)


# A device that came back on its previous target (Verify read /3/0 only): Object 5's
# state, result and delivery method unknown when its new target arrives.
UNKNOWN_OBJECT_5 = DeviceReport("ep-1", firmware_version="1.0", reported_at=T0 - 1)


@settings(max_examples=100, deadline=None)
@given(st.lists(ANSWERS, min_size=1, max_size=10), st.booleans(), st.booleans(),
       st.booleans())
def test_no_scripted_device_gets_more_than_60_requests_a_minute_and_each_one_ends(
    script: list[Answer], push: bool, moves: bool, unknown: bool,
) -> None:
    device = Device(script, push=push, push_moves=push and moves,
                    registered_at=T0 - 2 if unknown else T0)
    loop, backing_off = drive(device, UNKNOWN_OBJECT_5 if unknown else None)
    assert busiest_minute(device.sent) <= LIMIT
    assert busiest_minute(device.looks) <= LIMIT  # no decision loop without requests either
    assert loop.progress is not None and loop.last is not None
    state = loop.progress.state
    ended = state is UpdateState.CURRENT or state.terminal
    assert ended or backing_off or loop.last.wake_at is not None, (state, loop.last)


def test_the_skeleton_object_5_ends_failed_and_a_silent_device_is_asked_rarely() -> None:
    stubborn = Device([Answer("ok", fw=1)])  # state 1 forever, writes "accepted"
    loop, _ = drive(stubborn)
    assert loop.progress is not None and loop.progress.state is UpdateState.UPDATE_FAILED
    assert loop.progress.message.startswith("/5/0/3 stayed 1 after the URI was cleared 3")
    assert len(stubborn.sent) <= 20
    silent = Device([Answer("silent")])
    drive(silent)
    assert busiest_minute(silent.sent) <= 3


def test_a_push_the_device_never_answers_is_resumed_a_bounded_number_of_times() -> None:
    cut = Device([Answer("ok", fw=0)], push=True, push_patience=1.0)  # a lost link
    loop, _ = drive(cut)
    assert loop.progress is not None and loop.progress.state is UpdateState.UPDATE_FAILED
    assert loop.progress.message == ("the push stopped at block 0 of 1 after 6 "
                                     "interruptions; no retries left after 4 attempts")
    assert [cut.pushes.count(n) for n in range(1, 5)] == [6, 6, 6, 6]
    silent = Device([Answer("ok", fw=0)], push=True, push_patience=MAX_TRANSMIT_WAIT)
    loop, _ = drive(silent)  # each stop after 93 s: the download deadline comes first
    assert loop.progress is not None and loop.progress.state is UpdateState.UPDATE_FAILED
    assert loop.progress.message.startswith("download did not finish before its deadline")
    assert all(silent.pushes.count(n) == 2 for n in range(1, 5)), silent.pushes


def test_a_device_that_registers_again_at_every_push_ends_failed_within_bounds() -> None:
    moving = Device([Answer("ok", fw=0)], push=True, push_moves=True)
    loop, _ = drive(moving)
    assert loop.progress is not None and loop.progress.state is UpdateState.UPDATE_FAILED
    assert loop.progress.message == ("the push stopped at block 0 of 1 after 6 "
                                     "interruptions; no retries left after 4 attempts")
    assert busiest_minute(moving.sent) <= LIMIT
