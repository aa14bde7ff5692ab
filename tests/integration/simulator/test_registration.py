"""The simulator registers, updates and de-registers as the LwM2M core spec says."""

from __future__ import annotations

import itertools
import time
from typing import Any

import aiocoap

from reconciler.lwm2m.codecs import ContentFormat
from reconciler.simulator import DeviceSpec


async def test_a_device_registers_with_the_spec_parameters_and_object_links(
        server: Any, launch: Any) -> None:
    await launch(DeviceSpec("dev-a", lwm2m_version="1.1", lifetime=120))
    reg = server.reg("dev-a")
    assert reg.query == {"ep": "dev-a", "lt": "120", "lwm2m": "1.1", "b": "U"}
    assert reg.content_format == ContentFormat.LINK_FORMAT
    assert reg.payload == '</>;rt="oma.lwm2m";ct=11542,</1/0>,</3/0>,</5/0>'


async def test_queue_mode_is_b_uq_in_1_0_and_the_q_parameter_from_1_1(
        server: Any, launch: Any) -> None:
    await launch(DeviceSpec("old", lwm2m_version="1.0", queue_mode=True),
                 DeviceSpec("new", lwm2m_version="1.1", queue_mode=True))
    assert server.reg("old").query["b"] == "UQ"
    assert "Q" not in server.reg("old").query
    assert server.reg("new").query["b"] == "U"
    assert "Q" in server.reg("new").query and server.reg("new").query["Q"] is None


async def test_updates_go_to_the_location_path_and_stop_de_registers(
        server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("dev-b"))
    trigger = await server.request("dev-b", aiocoap.POST, "/1/0/8")
    assert trigger.code == aiocoap.CHANGED
    await server.wait_event("update", "dev-b")
    await fleet.stop()
    assert server.count("deregister", "dev-b") == 1
    assert server.regs == {}


async def test_a_device_the_server_forgot_registers_again(server: Any, launch: Any) -> None:
    fleet = await launch(DeviceSpec("dev-c"))
    server.regs.clear()
    fleet.device("dev-c").trigger_update()
    await server.wait_event("register", "dev-c", count=2)
    await fleet.device("dev-c").wait_registered(count=2)
    assert server.reg("dev-c").endpoint == "dev-c"


async def test_requests_from_any_other_address_are_ignored(server: Any, launch: Any) -> None:
    import socket

    fleet = await launch(DeviceSpec("dev-d"))
    foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    foreign.bind(("127.0.0.1", 0))
    foreign.setblocking(False)
    try:
        probe = aiocoap.Message(code=aiocoap.GET, uri_path=("3", "0", "3"))
        probe.mtype, probe.mid, probe.token = aiocoap.CON, 1, b"x"
        foreign.sendto(probe.encode(), ("127.0.0.1", fleet.device("dev-d").port))
        # The server's own request is answered; the device reads datagrams in order, so by
        # then the foreign one was seen and dropped.
        answer = await server.request("dev-d", aiocoap.GET, "/3/0/3")
        assert answer.code == aiocoap.CONTENT
        try:
            foreign.recv(2048)
            raise AssertionError("the device answered a stranger")
        except BlockingIOError:
            pass
    finally:
        foreign.close()


async def test_a_refused_device_retries_with_growing_pauses_until_admitted(
        server: Any, fleets: Any) -> None:
    from reconciler.simulator import Fleet, Timing

    server.refuse.add("late")
    fleet = Fleet(server.uri, [DeviceSpec("late")], timing=Timing(retry_delay=0.05))
    fleets.append(fleet)
    await fleet.start()
    await server.wait_event("refused", "late", count=4)
    assert not fleet.device("late").registered
    times = [t for kind, _, t in server.stamps if kind == "refused"][:4]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] < gaps[1] < gaps[2]  # 0.05, 0.1, 0.2 s
    server.refuse.clear()
    await fleet.device("late").wait_registered(timeout=5)


async def test_stop_gives_the_whole_fleet_one_deadline_once_the_server_is_gone(
        server: Any) -> None:
    """De-registering one device after the other (start_concurrency=1) would wait the
    deadline four times over; the sockets are closed however it ends."""
    from reconciler.simulator import Fleet, Timing

    fleet = Fleet(server.uri, [DeviceSpec(f"gone-{n}") for n in range(4)],
                  timing=Timing(retry_delay=0.2, deregister_timeout=0.5), start_concurrency=1)
    try:
        await fleet.start(wait_registered=True, timeout=10)
    finally:
        await server.stop()
    started = time.monotonic()
    await fleet.stop()
    took = time.monotonic() - started
    assert 0.5 <= took < 1.5, took  # it did wait for an answer, once
    assert all(d.location is None for d in fleet.devices())
    assert server.count("deregister", "gone-0") == 0
