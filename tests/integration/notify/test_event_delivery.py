"""Device events to real HTTP receivers on loopback: signed webhook CloudEvents and Slack
text reach a healthy receiver; a receiver that fails then recovers gets the same request
again with backoff; one that hangs costs its own queue (bounded, drops counted) and
nothing else; a restart resumes after the persisted cursor; a missing environment
variable disables only its provider and no secret is ever logged."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace

import pytest
from builders.desired import CID
from notify_harness import State
from receivers import Receiver, failing_first, hanging

from reconciler.model.notify import Alert, Notifications, Provider, ProviderKind, Severity
from reconciler.model.status import UpdateState
from reconciler.notify import DeliveryConfig, Notifier, NotifyConfig

KEY = "hmac-key-not-in-logs"
SLACK_PATH = "/services/T0/B0/slack-secret-path"
FAST = NotifyConfig(DeliveryConfig(queue_size=5, timeout=0.3, backoff=0.05, max_backoff=0.2,
                                   deadline=1.0), interval=5.0)  # the hub wakes it


def hooks(hook_url: str, chat_url: str | None = None, *, cloudevents: bool = True,
          chat_severity: Severity = Severity.ERROR) -> Notifications:
    providers = [Provider("ops", ProviderKind.WEBHOOK, hook_url + "/fota",
                          secret_env="OPS_KEY", cloudevents=cloudevents)]
    alerts = [Alert("all", "ops")]
    if chat_url is not None:
        providers.append(Provider("chat", ProviderKind.SLACK, address_env="CHAT_URL"))
        alerts.append(Alert("bad", "chat", frozenset({CID}), chat_severity))
    return Notifications(tuple(providers), tuple(alerts))


@asynccontextmanager
async def running(state: State, notifications: Notifications, env: Mapping[str, str],
                  config: NotifyConfig = FAST) -> AsyncIterator[Notifier]:
    notifier = Notifier(state.reader, state.store.set_notify_state, config, env,
                        hub=state.store.event_hub)
    state.store.apply_desired(state.desired(notifications))
    await notifier.set_desired(state.desired(notifications))
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        yield notifier
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


@contextmanager
def collector_passes() -> Iterator[list[float]]:
    """The seconds of each garbage-collector pass meanwhile, for a stall's message: one
    pass over a big heap stalls every loop of the process, whoever made the heap (it
    was 1.6 s once, over the FastAPI apps earlier tests had left: builders.heap)."""
    passes: list[float] = []
    began = 0.0

    def timed(phase: str, _info: dict[str, int]) -> None:
        nonlocal began
        if phase == "start":
            began = time.perf_counter()
        else:
            passes.append(time.perf_counter() - began)

    gc.callbacks.append(timed)
    try:
        yield passes
    finally:
        gc.callbacks.remove(timed)


async def settled(notifier: Notifier, provider: str, key: str, value: int) -> None:
    """Wait until the provider's counter reads `value`: the receiver records a request
    before our client has read the answer (no event marks that, so this polls, bounded)."""
    async with asyncio.timeout(5):
        while notifier.stats()[provider][key] != value:
            await asyncio.sleep(0.01)


@asynccontextmanager
async def receivers(*answers: object) -> AsyncIterator[list[Receiver]]:
    started = [await Receiver(a).start() for a in answers]  # type: ignore[arg-type]
    try:
        yield started
    finally:
        for receiver in started:
            await receiver.stop()


async def test_signed_cloudevents_and_slack_text_reach_healthy_receivers(
    state: State, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with receivers(lambda n: 200, lambda n: 200) as (hook, chat):
        env = {"OPS_KEY": KEY, "CHAT_URL": chat.url + SLACK_PATH}
        async with running(state, hooks(hook.url, chat.url), env):
            state.event("d1", "Pending -> Downloading: offered")
            state.event("d2", "Updating -> UpdateFailed: result 5",
                        state=UpdateState.UPDATE_FAILED)
            state.event("d1", "no answer to Read /5/0/3", kind="error")
            await hook.wait_for(lambda: len(hook.answered) == 3)
            await chat.wait_for(lambda: len(chat.answered) == 2)
    for got in hook.requests:
        assert got.path == "/fota" and got.headers["content-type"] == \
            "application/cloudevents+json"
        expected = hmac.new(KEY.encode(), got.body, hashlib.sha256).hexdigest()
        assert got.headers["x-fota-signature"] == f"sha256={expected}"
        assert got.json()["id"] == got.headers["x-fota-event-id"]
    assert [(r.json()["subject"], r.json()["data"]["severity"]) for r in hook.requests] == [
        ("d1", "info"), ("d2", "error"), ("d1", "error")]
    assert [r.path for r in chat.requests] == [SLACK_PATH] * 2
    assert [r.json()["text"] for r in chat.requests] == [
        f"fota error: fleet: device d2: Updating -> UpdateFailed: result 5 (revision {'1' * 12})",
        f"fota error: fleet: device d1: no answer to Read /5/0/3 (revision {'1' * 12})"]
    assert state.reader.notify_state()["cursor"] == 3
    assert KEY not in caplog.text and "slack-secret-path" not in caplog.text


async def test_a_restart_resumes_after_the_cursor_without_repeating(state: State) -> None:
    async with receivers(lambda n: 200) as (hook,):
        notifications = hooks(hook.url)
        env = {"OPS_KEY": KEY}
        async with running(state, notifications, env):
            state.event("d1", "Pending -> Downloading: a")
            await hook.wait_for(lambda: len(hook.answered) == 1)
        state.event("d1", "Downloading -> Downloaded: b")  # while no notifier runs
        async with running(state, notifications, env):
            state.event("d2", "Pending -> Downloading: c")
            await hook.wait_for(lambda: len(hook.answered) == 3)
            await asyncio.sleep(0.2)  # a few more looks: nothing else is sent
    assert [r.headers["x-fota-event-id"] for r in hook.requests] == ["1", "2", "3"]


async def test_a_failing_receiver_gets_the_same_request_again_until_it_recovers(
    state: State
) -> None:
    async with receivers(failing_first(2)) as (hook,), \
            running(state, hooks(hook.url), {"OPS_KEY": KEY}) as notifier:
        state.event("d1", "Pending -> Downloading: a")
        await hook.wait_for(lambda: len(hook.answered) == 1)
        await settled(notifier, "ops", "sent", 1)
        stats = notifier.stats()["ops"]
    assert len(hook.requests) == 3
    assert len({(r.body, r.headers["x-fota-event-id"]) for r in hook.requests}) == 1
    assert (stats["sent"], stats["retries"], stats["dropped"]) == (1, 2, 0)
    saved = state.reader.notify_state()["providers"]
    assert isinstance(saved, dict) and saved["ops"]["sent"] == 1  # counters kept at stop


async def test_a_hanging_receiver_costs_only_its_own_bounded_queue(state: State) -> None:
    """The hung provider times out, drops past its queue bound and its deadline, and
    counts it; the healthy one gets every event and the loop never stalls."""
    notifications = Notifications(
        (Provider("stuck", ProviderKind.WEBHOOK, "", address_env="STUCK_URL"),
         Provider("ops", ProviderKind.WEBHOOK, "", address_env="OPS_URL")),
        (Alert("a", "stuck"), Alert("b", "ops")))
    config = NotifyConfig(replace(FAST.delivery, queue_size=50), interval=5.0)
    lag = 0.0

    async def measure_lag(stop: asyncio.Event) -> None:
        nonlocal lag
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lag = max(lag, time.perf_counter() - before - 0.01)

    async with receivers(hanging, lambda n: 200) as (stuck, hook):
        env = {"STUCK_URL": stuck.url, "OPS_URL": hook.url}
        async with running(state, notifications, env, config) as notifier:
            started = time.monotonic()
            done = asyncio.Event()
            with collector_passes() as passes:
                ticker = asyncio.create_task(measure_lag(done))
                for wave in range(5):
                    for n in range(40):
                        state.event(f"d{n % 2 + 1}", f"Pending -> Downloading: {wave}.{n}")
                    await hook.wait_for(lambda w=wave: len(hook.answered) == 40 * (w + 1))
                stats = notifier.stats()["stuck"]
                elapsed = time.monotonic() - started
                done.set()
                await ticker
    assert stats["queued"] <= 50  # the queue bound
    assert stats["dropped"] >= 200 - 50 - 1  # at most one in flight beside the queue
    assert stats["sent"] == 0 and stats["failing"] is True
    # One attempt at a time, each ended by the 0.3 s timeout: no flood of connections.
    assert len(stuck.requests) <= elapsed / 0.3 + 2
    assert lag < 0.25, f"event loop stalled {lag:.3f}s (longest garbage-collector pass " \
        f"meanwhile: {max(passes, default=0.0):.3f}s)"


async def test_a_missing_variable_disables_that_provider_only(
    state: State, caplog: pytest.LogCaptureFixture
) -> None:
    async with receivers(lambda n: 200) as (hook,):
        env = {"OPS_KEY": KEY}  # CHAT_URL missing
        notifications = hooks(hook.url, "unused", chat_severity=Severity.INFO)
        async with running(state, notifications, env) as notifier:
            state.event("d1", "Pending -> Downloading: a")
            await hook.wait_for(lambda: len(hook.answered) == 1)
            assert notifier.stats()["chat"] == {
                "error": "environment variable CHAT_URL is not set (addressFrom)"}
    assert "notification provider 'chat' disabled: environment variable CHAT_URL is not " \
        "set (addressFrom)" in caplog.text
    assert KEY not in caplog.text


async def test_a_revision_that_keeps_a_providers_address_keeps_its_queue(
    state: State
) -> None:
    """A new format or secret for the same receiver: what was queued is still delivered
    (as it was built), what comes after uses the new settings."""
    async with receivers(failing_first(3)) as (hook,), \
            running(state, hooks(hook.url), {"OPS_KEY": KEY}) as notifier:
        for n in range(3):
            state.event("d1", f"Pending -> Downloading: {n}")
        await hook.wait_for(lambda: len(hook.requests) == 1)  # failed: the rest waits
        await notifier.set_desired(state.desired(hooks(hook.url, cloudevents=False)))
        state.event("d2", "Pending -> Downloading: after")
        await hook.wait_for(lambda: len(hook.answered) == 4)
        await settled(notifier, "ops", "sent", 4)
        stats = notifier.stats()["ops"]
    assert [r.headers["x-fota-event-id"] for r in hook.answered] == ["1", "2", "3", "4"]
    assert [r.headers["content-type"] for r in hook.answered] == [
        "application/cloudevents+json"] * 3 + ["application/json"]
    assert (stats["dropped"], stats["retries"]) == (0, 3)


async def test_a_revision_that_moves_a_provider_drops_its_queue_and_says_so(
    state: State, caplog: pytest.LogCaptureFixture
) -> None:
    async with receivers(lambda n: 503, lambda n: 200) as (old, new), \
            running(state, hooks(old.url), {"OPS_KEY": KEY}) as notifier:
        for n in range(3):
            state.event("d1", f"Pending -> Downloading: {n}")
        await old.wait_for(lambda: len(old.requests) == 1)
        await notifier.set_desired(state.desired(hooks(new.url)))
        state.event("d2", "Pending -> Downloading: after")
        await new.wait_for(lambda: len(new.answered) == 1)
        await settled(notifier, "ops", "sent", 1)
    assert [r.headers["x-fota-event-id"] for r in new.requests] == ["4"]
    assert "notification provider 'ops' changed its address or kind: 3 queued requests " \
        "dropped" in caplog.text
    assert state.reader.notify_state()["cursor"] == 4  # the dropped ones are not re-sent
