"""Commit statuses on fake GitHub and GitLab APIs on loopback: `pending` while the
rollout runs (a changed count alone waits `status_interval`), `success` once every
device is Current, an earlier revision's `pending` marked superseded, and nothing ever
posted twice, across a restart too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from builders.desired import CID, NEW, OLD
from notify_harness import State
from receivers import Receiver

from reconciler.model.desired import DesiredState
from reconciler.model.notify import Alert, Notifications, Provider, ProviderKind
from reconciler.model.observed import DeviceProgress
from reconciler.model.status import UpdateState
from reconciler.notify import DeliveryConfig, Notifier, NotifyConfig

REV, REV2, REV3 = "1" * 40, "2" * 40, "3" * 40
CONFIG = NotifyConfig(DeliveryConfig(timeout=2.0, backoff=0.05, deadline=5.0),
                      interval=0.05, status_interval=60.0)
ENV = {"GH_TOKEN": "gh-token", "GL_TOKEN": "gl-token"}


def hosts(github: str, gitlab: str) -> Notifications:
    return Notifications(
        (Provider("gh", ProviderKind.GITHUB, github, secret_env="GH_TOKEN",
                  repository="acme/fleet"),
         Provider("gl", ProviderKind.GITLAB, gitlab + "/api/v4", secret_env="GL_TOKEN",
                  repository="group/fleet")),
        (Alert("s", "gh", frozenset({CID})), Alert("t", "gl")))


@asynccontextmanager
async def notifier_on(state: State, revision: str, notifications: Notifications,
                      target: str = NEW.image_id) -> AsyncIterator[Notifier]:
    """A notifier told of `revision`, running until the block ends."""
    notifier = Notifier(state.reader, state.store.set_notify_state, CONFIG, ENV)
    stop = asyncio.Event()
    try:
        await apply(state, notifier, state.desired(notifications, revision, target))
        task = asyncio.create_task(notifier.run(stop))
        yield notifier
        stop.set()
        await asyncio.wait_for(task, 5)
    finally:
        await notifier.close()


async def apply(state: State, notifier: Notifier, desired: DesiredState) -> None:
    """As `fota serve` does: the store takes the revision, then the notifier hears of it."""
    state.store.apply_desired(desired)
    await notifier.set_desired(desired)


def posted(receiver: Receiver) -> list[tuple[str, str, str]]:
    """(sha, state, description) of each status the fake host accepted."""
    return [(r.path.rsplit("/", 1)[1], r.json()["state"], r.json()["description"])
            for r in receiver.answered]


def current(state: State, *device_ids: str, target: str = NEW.image_id) -> None:
    for device_id in device_ids:
        state.store.put_progress(DeviceProgress(device_id, target, UpdateState.CURRENT))


async def test_pending_then_success_then_superseded_never_twice(state: State) -> None:
    github, gitlab = Receiver(), Receiver()
    await github.start()
    await gitlab.start()
    try:
        notifications = hosts(github.url, gitlab.url)
        async with notifier_on(state, REV, notifications) as notifier:
            await github.wait_for(lambda: len(github.answered) == 1)
            current(state, "d1")  # 1/2: only the count changed, held for status_interval
            await asyncio.sleep(0.3)  # several looks at the store
            assert posted(github) == [(REV, "pending", "fota: 0/2 Current")]
            current(state, "d2")
            await github.wait_for(lambda: len(github.answered) == 2)
            # A revision that changes the rollout starts a new one; another replaces it
            # before it finished, and the earlier one says so.
            await apply(state, notifier, state.desired(notifications, REV2, OLD.image_id))
            await github.wait_for(lambda: len(github.answered) == 3)
            await apply(state, notifier, state.desired(notifications, REV3))
            await github.wait_for(lambda: len(github.answered) == 5)
            await gitlab.wait_for(lambda: len(gitlab.answered) == 5)
            await asyncio.sleep(0.3)  # several more looks: nothing is posted again
        assert posted(github) == [
            (REV, "pending", "fota: 0/2 Current"),
            (REV, "success", "fota: 2/2 Current"),
            (REV2, "pending", "fota: 0/2 Current"),
            (REV2, "error", f"fota: superseded by {REV3[:12]} before it finished"),
            (REV3, "success", "fota: 2/2 Current")]
        assert [s for _, s, _ in posted(gitlab)] == [
            "running", "success", "running", "canceled", "success"]
        first = github.requests[0]
        assert first.path == f"/repos/acme/fleet/statuses/{REV}"
        assert first.headers["authorization"] == "Bearer gh-token"
        assert first.json()["context"] == f"fota/{CID}"
        assert gitlab.requests[0].path == f"/api/v4/projects/group%2Ffleet/statuses/{REV}"
        assert gitlab.requests[0].headers["private-token"] == "gl-token"
        assert gitlab.requests[0].json()["name"] == f"fota/{CID}"
        # A restart on the same revision posts nothing: what was posted is persisted.
        async with notifier_on(state, REV3, notifications):
            await asyncio.sleep(0.3)  # several looks at the store
        assert len(github.requests) == 5 and len(gitlab.requests) == 5
    finally:
        await github.stop()
        await gitlab.stop()


async def test_no_status_is_judged_on_counts_of_another_revision(state: State) -> None:
    """The store still holds the last revision (every device Current on its target)
    while the notifier already heard of a new target: nothing may read as done."""
    github, gitlab = Receiver(), Receiver()
    await github.start()
    await gitlab.start()
    try:
        notifications = hosts(github.url, gitlab.url)
        current(state, "d1", "d2", target=OLD.image_id)
        async with notifier_on(state, REV, notifications, OLD.image_id) as notifier:
            await github.wait_for(lambda: len(github.answered) == 1)
            await notifier.set_desired(state.desired(notifications, REV2))  # store: REV
            await asyncio.sleep(0.3)  # several looks at the store
            assert posted(github) == [(REV, "success", "fota: 2/2 Current")]
            state.store.apply_desired(state.desired(notifications, REV2))
            await github.wait_for(lambda: len(github.answered) == 2)
        assert posted(github)[1] == (REV2, "pending", "fota: 0/2 Current")
    finally:
        await github.stop()
        await gitlab.stop()
