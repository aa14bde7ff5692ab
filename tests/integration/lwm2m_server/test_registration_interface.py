"""Register, Update, De-register, expiry and replacement over real CoAP on loopback."""

from __future__ import annotations

from aiocoap.numbers.codes import Code

from reconciler.model.lwm2m import RegistrationEventKind as Kind

ROOTED = b'</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>;ver=1.1,</5/0>'


async def test_a_register_creates_a_registration_with_its_location_and_an_event(
    server, events, coap, rd
):
    response = await rd(coap, Code.POST, "rd?ep=dev-1&lt=300&lwm2m=1.1&b=U", ROOTED)

    assert response.code == Code.CREATED
    assert response.opt.location_path[0] == "rd"
    reg = server.registration("dev-1")
    assert reg is not None
    assert response.opt.location_path[1] == reg.registration_id
    assert (reg.lifetime, reg.lwm2m_version, reg.binding) == (300, "1.1", "U")
    assert reg.object_links == ("/1/0", "/3/0", "/5/0")
    assert reg.host == "127.0.0.1" and reg.port == coap_port(coap, server)
    event = await events.next()
    assert (event.kind, event.registration) == (Kind.REGISTERED, reg)


def coap_port(coap, server) -> int:
    # the client context's only socket, read the same way the server reads its own
    [tman] = coap.request_interfaces
    return int(tman.token_interface.message_interface.transport
               .get_extra_info("socket").getsockname()[1])


async def test_a_register_without_optional_parameters_gets_the_1_0_defaults(
    server, coap, rd
):
    await rd(coap, Code.POST, "rd?ep=plain", b"</1/0>,</3/0>")

    reg = server.registration("plain")
    assert reg is not None
    assert (reg.lifetime, reg.lwm2m_version, reg.binding, reg.queue_mode) == (
        86400, "1.0", "U", False)


async def test_a_1_2_client_may_omit_the_binding_and_announce_queue_mode_with_q(
    server, coap, rd
):
    await rd(coap, Code.POST, "rd?ep=sleepy&lwm2m=1.2&Q", b"</3/0>,</5/0>")

    reg = server.registration("sleepy")
    assert reg is not None
    assert (reg.binding, reg.queue_mode, reg.lwm2m_version) == ("U", True, "1.2")


async def test_a_1_0_client_announces_queue_mode_with_binding_uq(server, coap, rd):
    await rd(coap, Code.POST, "rd?ep=old&b=UQ", b"</3/0>")

    reg = server.registration("old")
    assert reg is not None and (reg.binding, reg.queue_mode) == ("U", True)


async def test_an_alternate_root_path_is_stripped_from_the_object_links(server, coap, rd):
    payload = b'</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/5/0>'
    await rd(coap, Code.POST, "rd?ep=rooted", payload)

    reg = server.registration("rooted")
    assert reg is not None and reg.object_links == ("/1/0", "/5/0")


async def test_an_update_refreshes_lifetime_binding_and_links_and_is_an_event(
    server, events, clock, coap, rd
):
    created = await rd(coap, Code.POST, "rd?ep=dev-2&lt=60", b"</1/0>,</3/0>")
    location = "/".join(created.opt.location_path)
    await events.next()
    clock.now += 30

    response = await rd(coap, Code.POST, f"{location}?lt=120&b=UQ", b"</3/0>,</5/0>")

    assert response.code == Code.CHANGED
    reg = server.registration("dev-2")
    assert reg is not None
    assert (reg.lifetime, reg.queue_mode, reg.object_links) == (120, True, ("/3/0", "/5/0"))
    assert reg.updated_at == clock.now and reg.registered_at == clock.now - 30
    assert (await events.next()).kind == Kind.UPDATED


async def test_an_update_without_payload_keeps_the_object_links(server, coap, rd):
    created = await rd(coap, Code.POST, "rd?ep=dev-3", b"</3/0>,</5/0>")

    await rd(coap, Code.POST, "/".join(created.opt.location_path))

    reg = server.registration("dev-3")
    assert reg is not None and reg.object_links == ("/3/0", "/5/0")


async def test_a_deregister_removes_the_registration_and_is_an_event(
    server, events, coap, rd
):
    created = await rd(coap, Code.POST, "rd?ep=dev-4", b"</3/0>")
    await events.next()

    response = await rd(coap, Code.DELETE, "/".join(created.opt.location_path))

    assert response.code == Code.DELETED
    assert server.registration("dev-4") is None and server.registrations() == []
    event = await events.next()
    assert event.kind == Kind.DEREGISTERED and event.registration.endpoint == "dev-4"


async def test_a_registration_whose_lifetime_ran_out_expires_with_an_event(
    server, events, clock, coap, rd
):
    await rd(coap, Code.POST, "rd?ep=dev-5&lt=60", b"</3/0>")
    await events.next()

    clock.now += 61

    assert server.registration("dev-5") is None
    event = await events.next()
    assert event.kind == Kind.EXPIRED and event.registration.endpoint == "dev-5"


async def test_an_update_after_expiry_is_answered_not_found(server, events, clock, coap, rd):
    created = await rd(coap, Code.POST, "rd?ep=dev-6&lt=60", b"</3/0>")
    clock.now += 61

    response = await rd(coap, Code.POST, "/".join(created.opt.location_path))

    assert response.code == Code.NOT_FOUND


async def test_a_new_register_for_a_known_endpoint_from_a_new_port_replaces_the_old_one(
    server, events, coap, rd
):
    from aiocoap import Context

    first = await rd(coap, Code.POST, "rd?ep=rebooted", b"</3/0>")
    rebooted = await Context.create_client_context(transports=["udp6"])
    try:
        second = await rd(rebooted, Code.POST, "rd?ep=rebooted", b"</3/0>,</5/0>")
        stale = await rd(coap, Code.POST, "/".join(first.opt.location_path))
        new_port = coap_port(rebooted, server)
    finally:
        await rebooted.shutdown()

    assert second.opt.location_path != first.opt.location_path
    assert stale.code == Code.NOT_FOUND
    [reg] = server.registrations()
    assert reg.port == new_port and reg.object_links == ("/3/0", "/5/0")
    kinds = [(await events.next()).kind for _ in range(2)]
    assert kinds == [Kind.REGISTERED, Kind.REGISTERED]


async def test_an_endpoint_refused_by_admit_gets_forbidden_and_is_not_registered(
    server, coap, rd
):
    response = await rd(coap, Code.POST, "rd?ep=refused-1", b"</3/0>")

    assert response.code == Code.FORBIDDEN
    assert b"refused-1" in response.payload
    assert server.registration("refused-1") is None


async def test_a_subscriber_that_raises_does_not_break_registration(server, coap, rd):
    def broken(event):
        raise RuntimeError("subscriber bug")

    server.subscribe(broken)
    response = await rd(coap, Code.POST, "rd?ep=dev-7", b"</3/0>")

    assert response.code == Code.CREATED and server.registration("dev-7") is not None


async def test_unsubscribing_stops_the_events(server, coap, rd):
    seen = []
    unsubscribe = server.subscribe(seen.append)
    await rd(coap, Code.POST, "rd?ep=dev-8", b"</3/0>")
    unsubscribe()
    await rd(coap, Code.POST, "rd?ep=dev-9", b"</3/0>")

    assert [e.registration.endpoint for e in seen] == ["dev-8"]


async def test_an_update_from_a_new_address_moves_the_registration_there(server, coap, rd):
    from aiocoap import Context

    created = await rd(coap, Code.POST, "rd?ep=nat", b"</3/0>")
    rebound = await Context.create_client_context(transports=["udp6"])
    try:
        await rd(rebound, Code.POST, "/".join(created.opt.location_path))
        new_port = coap_port(rebound, server)
    finally:
        await rebound.shutdown()

    reg = server.registration("nat")
    assert reg is not None and reg.port == new_port


async def test_the_server_serves_ipv6_loopback_too(coap):
    from aiocoap import Message

    from reconciler.lwm2m.server import Lwm2mServer

    server = Lwm2mServer("::1", 0)
    await server.start()
    try:
        request = Message(code=Code.POST, uri=f"coap://[::1]:{server.port}/rd?ep=six",
                          payload=b"</3/0>")
        response = await coap.request(request).response
        reg = server.registration("six")
    finally:
        await server.stop()

    assert response.code == Code.CREATED
    assert reg is not None and reg.host == "::1"


async def test_a_register_too_big_for_one_datagram_arrives_block_wise(server, coap, rd):
    links = ",".join(f"</{obj}/{inst}>" for obj in (3, 5, 3303) for inst in range(150))

    response = await rd(coap, Code.POST, "rd?ep=big", links.encode())

    reg = server.registration("big")
    assert len(links) > 1024 and response.code == Code.CREATED
    assert reg is not None and len(reg.object_links) == 450
