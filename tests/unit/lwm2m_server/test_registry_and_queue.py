"""The registration table with a fake clock, and queue-mode awake windows and holding."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.lwm2m.queue import QueueMode
from reconciler.lwm2m.rd_parsing import RegisterParams, UpdateParams
from reconciler.lwm2m.rd_table import RegistrationTable, Source


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def params(endpoint: str = "a", lifetime: int = 60, queue: bool = False) -> RegisterParams:
    return RegisterParams(endpoint, lifetime, "1.1", "U", queue, ("/3/0",), None)


NO_CHANGE = UpdateParams(None, None, None, None)
HOME, ROAMED = Source("10.0.0.1", 5000, "remote-1"), Source("10.0.0.1", 6000, "remote-2")


def test_a_registration_lives_until_its_lifetime_runs_out():
    clock = Clock()
    registry = RegistrationTable(clock)
    entry, replaced = registry.register(params(), HOME)
    clock.now += 59

    assert replaced is None and registry.get("a") == entry and registry.pop_expired() == []
    clock.now += 1
    assert registry.get("a") is None and registry.entries() == []
    assert registry.pop_expired() == [entry]


def test_an_update_moves_the_registration_to_the_new_address_and_renews_it():
    clock = Clock()
    registry = RegistrationTable(clock)
    entry, _ = registry.register(params(), HOME)
    clock.now += 50

    updated = registry.update(entry.registration.registration_id, NO_CHANGE, ROAMED)
    clock.now += 50

    assert (updated.registration.port, updated.remote) == (6000, "remote-2")
    assert registry.get("a") == updated


def test_a_second_register_replaces_the_first_and_retires_its_location():
    registry = RegistrationTable(Clock())
    first, _ = registry.register(params(), HOME)
    second, replaced = registry.register(params(), ROAMED)

    assert replaced == first and registry.entries() == [second]
    with pytest.raises(KeyError):
        registry.update(first.registration.registration_id, NO_CHANGE, HOME)
    with pytest.raises(KeyError):
        registry.deregister(first.registration.registration_id)


def test_registration_ids_differ_between_endpoints():
    registry = RegistrationTable(Clock())
    ids = {registry.register(params(f"e{i}"), HOME)[0].registration.registration_id
           for i in range(200)}

    assert len(ids) == 200


def test_a_queue_mode_device_sleeps_after_the_window_and_an_answer_extends_it():
    clock = Clock()
    registry, queue = RegistrationTable(clock), QueueMode(clock, awake=10)
    reg = registry.register(params(queue=True), HOME)[0].registration
    assert queue.is_awake(reg)

    clock.now += 10
    assert not queue.is_awake(reg)
    queue.heard("a")
    assert queue.is_awake(reg)


async def test_held_requests_are_released_in_order_when_the_device_wakes():
    queue = QueueMode(Clock())
    order: list[int] = []

    async def hold(n: int) -> None:
        await queue.wait("a")
        order.append(n)

    tasks = [asyncio.create_task(hold(n)) for n in range(3)]
    while queue.held("a") < 3:
        await asyncio.sleep(0)
    queue.wake("a")
    await asyncio.gather(*tasks)

    assert order == [0, 1, 2] and queue.held("a") == 0
