"""The datagram fast path (`FastPath.handle`) against RFC 7252/7959, datagram by datagram."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.lwm2m import coapframe
from reconciler.lwm2m.fastpath import PASS, FastPath
from reconciler.lwm2m.firmware import FirmwareRepository, block_value

IMAGE = bytes(range(256)) * 20  # 5120 bytes


@pytest.fixture
def repository() -> FirmwareRepository:
    return FirmwareRepository()


@pytest.fixture
def path(repository: FirmwareRepository) -> list[bytes]:
    return [s.encode() for s in repository.offer("dev-a", "img", IMAGE).strip("/").split("/")]


def request(
    path: list[bytes],
    *,
    mtype: int = coapframe.CON,
    code: int = coapframe.GET,
    mid: int = 0x1234,
    token: bytes = b"\xa1\xb2",
    extra: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    options = [(coapframe.URI_PATH, segment) for segment in path] + list(extra)
    return coapframe.build(mtype, code, mid, token, coapframe.tail(options))


def block2(num: int, szx: int) -> tuple[tuple[int, bytes], ...]:
    return ((coapframe.BLOCK2, coapframe.uint(block_value(num, False, szx))),)


def answer(repository: FirmwareRepository, datagram: bytes) -> coapframe.Datagram:
    reply = FastPath(repository).handle(datagram)
    assert reply is not None and reply is not PASS
    return coapframe.parse(reply)


def test_a_confirmable_block_get_gets_a_piggybacked_ack_with_its_mid_and_token(
    repository: FirmwareRepository, path: list[bytes]
) -> None:
    reply = answer(repository, request(path, extra=block2(2, 2)))
    assert (reply.mtype, reply.code, reply.mid, reply.token) == (
        coapframe.ACK,
        coapframe.CONTENT,
        0x1234,
        b"\xa1\xb2",
    )
    assert reply.payload == IMAGE[128:192]
    offer = repository.image("img")
    assert offer is not None
    assert reply.values(coapframe.ETAG) == [offer.etag]
    assert reply.values(coapframe.CONTENT_FORMAT) == [coapframe.uint(42)]
    assert reply.values(coapframe.BLOCK2) == [coapframe.uint(block_value(2, True, 2))]
    assert reply.values(coapframe.SIZE2) == [coapframe.uint(len(IMAGE))]


def test_a_non_confirmable_get_gets_a_non_reply_with_a_fresh_mid(
    repository: FirmwareRepository, path: list[bytes]
) -> None:
    fast = FastPath(repository)
    non = coapframe.NON
    first = coapframe.parse(fast.handle(request(path, mtype=non, extra=block2(0, 6))) or b"")
    second = coapframe.parse(fast.handle(request(path, mtype=non, extra=block2(1, 6))) or b"")
    assert (first.mtype, first.token, first.payload) == (coapframe.NON, b"\xa1\xb2", IMAGE[:1024])
    assert first.mid != second.mid


def test_a_duplicate_confirmable_is_answered_again_identically(
    repository: FirmwareRepository, path: list[bytes]
) -> None:
    fast = FastPath(repository)
    datagram = request(path, extra=block2(4, 6))
    assert fast.handle(datagram) == fast.handle(datagram)


def test_a_first_get_without_block2_gets_block_zero_with_size2(
    repository: FirmwareRepository, path: list[bytes]
) -> None:
    reply = answer(repository, request(path))
    assert reply.payload == IMAGE[:1024]
    assert reply.values(coapframe.BLOCK2) == [coapframe.uint(block_value(0, True, 6))]
    assert reply.values(coapframe.SIZE2) == [coapframe.uint(len(IMAGE))]


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (block2(5, 6), coapframe.BAD_OPTION, b"starts past"),
        (block2(0, 7), coapframe.BAD_REQUEST, b"reserved"),
        (((coapframe.BLOCK2, b"\x00\x00\x00\x10"),), coapframe.BAD_OPTION, b"0-3 bytes"),
        (block2(0, 6) + block2(1, 6), coapframe.BAD_OPTION, b"0-3 bytes"),
        (((coapframe.ACCEPT, coapframe.uint(50)),), coapframe.NOT_ACCEPTABLE, b"octet-stream"),
        (((coapframe.IF_MATCH, b""),), coapframe.BAD_OPTION, b"critical option 1"),
        (((coapframe.PROXY_URI, b"coap://x/"),), coapframe.PROXYING_NOT_SUPPORTED, b"not a proxy"),
    ],
)
def test_bad_requests_get_the_matching_error_code_and_a_diagnostic(
    repository: FirmwareRepository,
    path: list[bytes],
    extra: tuple[tuple[int, bytes], ...],
    code: int,
    message: bytes,
) -> None:
    reply = answer(repository, request(path, extra=extra))
    assert (reply.mtype, reply.code, reply.mid) == (coapframe.ACK, code, 0x1234)
    assert message in reply.payload


def test_an_unknown_token_or_a_revoked_offer_is_not_found(
    repository: FirmwareRepository, path: list[bytes]
) -> None:
    assert answer(repository, request([b"fw", b"guess"])).code == coapframe.NOT_FOUND
    assert answer(repository, request([b"fw"])).code == coapframe.NOT_FOUND
    assert answer(repository, request([*path, b"more"])).code == coapframe.NOT_FOUND
    assert answer(repository, request([b"fw", b"\xff"])).code == coapframe.BAD_REQUEST
    repository.revoke("dev-a")
    assert answer(repository, request(path)).code == coapframe.NOT_FOUND


def test_methods_other_than_get_are_not_allowed(
    repository: FirmwareRepository, path: list[bytes]
) -> None:
    assert answer(repository, request(path, code=0x03)).code == coapframe.METHOD_NOT_ALLOWED


def test_a_coap_ping_gets_a_reset_and_acks_and_resets_get_nothing(
    repository: FirmwareRepository,
) -> None:
    fast = FastPath(repository)
    empty_con = coapframe.build(coapframe.CON, coapframe.EMPTY, 7, b"")
    assert fast.handle(empty_con) == coapframe.reset(7)
    assert fast.handle(coapframe.build(coapframe.ACK, coapframe.EMPTY, 7, b"")) is None
    assert fast.handle(coapframe.build(coapframe.RST, coapframe.EMPTY, 7, b"")) is None
    response_con = coapframe.build(coapframe.CON, coapframe.CONTENT, 8, b"t")
    assert fast.handle(response_con) == coapframe.reset(8)
    assert fast.handle(coapframe.build(coapframe.NON, coapframe.CONTENT, 8, b"t")) is None


@pytest.mark.parametrize(
    "datagram",
    [
        bytes([0x49, 0x01, 0, 9]) + b"\x00" * 9,  # token length 9
        bytes([0x44, 0x01, 0, 9, 1, 2]),  # truncated token
        bytes([0x40, 0x01, 0, 9, 0xF1, 0]),  # option nibble 15
        bytes([0x40, 0x01, 0, 9, 0xD1]),  # truncated extended delta
        bytes([0x40, 0x01, 0, 9, 0xB5, 0x66]),  # option value past the end
        bytes([0x40, 0x01, 0, 9, 0xFF]),  # payload marker without payload
        bytes([0x40, 0x00, 0, 9, 0xFF, 1]),  # empty message with a payload
    ],
)
def test_malformed_confirmables_get_a_reset_and_non_confirmables_nothing(datagram: bytes) -> None:
    fast = FastPath(FirmwareRepository())
    assert fast.handle(datagram) == coapframe.reset(9)
    assert fast.handle(bytes([datagram[0] | 0x10]) + datagram[1:]) is None
    assert fast.handle(datagram, exclusive=False) is PASS


def test_short_datagrams_and_other_versions_are_ignored() -> None:
    fast = FastPath(FirmwareRepository())
    assert fast.handle(b"\x40\x01") is None
    assert fast.handle(bytes([0x80, 0x01, 0, 1])) is None


def test_on_a_shared_socket_only_fw_requests_are_taken(
    repository: FirmwareRepository, path: list[bytes]
) -> None:
    fast = FastPath(repository)
    assert fast.handle(request([b"rd"], code=0x02), exclusive=False) is PASS
    ack = coapframe.build(coapframe.ACK, coapframe.CONTENT, 1, b"")
    assert fast.handle(ack, exclusive=False) is PASS
    taken = fast.handle(request(path, extra=block2(1, 6)), exclusive=False)
    assert taken is not PASS and coapframe.parse(taken or b"").payload == IMAGE[1024:2048]


@settings(max_examples=400, deadline=None)
@given(datagram=st.binary(max_size=40))
def test_any_datagram_gets_a_well_formed_reply_or_none(datagram: bytes) -> None:
    repository = FirmwareRepository()
    repository.offer("dev-a", "img", IMAGE)
    reply = FastPath(repository).handle(datagram)
    if reply is None:
        return
    parsed = coapframe.parse(reply)
    assert parsed.mid == (datagram[2] << 8 | datagram[3]) or parsed.mtype == coapframe.NON
    assert parsed.mtype in (coapframe.ACK, coapframe.RST, coapframe.NON)


@settings(max_examples=300, deadline=None)
@given(
    options=st.lists(
        st.tuples(
            st.sampled_from([1, 3, 4, 6, 7, 11, 12, 15, 17, 23, 27, 28, 35, 60, 2049]),
            st.binary(max_size=5),
        ),
        max_size=6,
    ),
    mtype=st.sampled_from([coapframe.CON, coapframe.NON]),
    code=st.integers(0, 255),
)
def test_well_formed_requests_with_any_options_get_a_coap_answer(
    options: list[tuple[int, bytes]], mtype: int, code: int
) -> None:
    repository = FirmwareRepository()
    path = repository.offer("dev-a", "img", IMAGE).strip("/").split("/")
    all_options = [(coapframe.URI_PATH, p.encode()) for p in path] + options
    datagram = coapframe.build(mtype, code, 5, b"tk", coapframe.tail(all_options))
    reply = FastPath(repository).handle(datagram)
    if reply is not None:
        parsed = coapframe.parse(reply)
        assert parsed.mtype in (coapframe.ACK, coapframe.NON, coapframe.RST)
        assert parsed.mtype == coapframe.RST or parsed.token == b"tk"


@settings(max_examples=300, deadline=None)
@given(
    block=st.one_of(st.none(), st.tuples(st.integers(0, 400), st.integers(0, 7),
                                         st.booleans(), st.integers(1, 3))),
    options=st.lists(st.tuples(st.sampled_from([3, 4, 12, 17, 28, 60]), st.binary(max_size=2)),
                     max_size=2),
    mtype=st.sampled_from([coapframe.CON, coapframe.NON]),
    token=st.binary(max_size=8),
    refused=st.booleans(),
)
def test_an_answer_from_the_encoded_blocks_equals_the_full_parse(
    block: tuple[int, int, bool, int] | None, options: list[tuple[int, bytes]], mtype: int,
    token: bytes, refused: bool,
) -> None:
    """The first ask of a block is answered by the full parse, the second, with blocks
    encoded, by slicing the request (`_usual`): both give the same answer, and both count
    the block once."""
    repository = FirmwareRepository()
    path = repository.offer("dev-a", "img", IMAGE).strip("/").split("/")
    extra = list(options)
    if block is not None:  # any width, the M bit either way (it means nothing in a request)
        num, szx, more, width = block
        value = block_value(num, more, szx)
        width = max(width, (value.bit_length() + 7) // 8)  # 1-3 bytes, leading zeros or not
        extra.append((coapframe.BLOCK2, value.to_bytes(width, "big")))
    all_options = [(coapframe.URI_PATH, p.encode()) for p in path] + extra
    datagram = coapframe.build(mtype, coapframe.GET, 5, token, coapframe.tail(all_options))
    fast = FastPath(repository)
    allowed = (lambda token: False) if refused else None

    answers, counted = [], []
    for ask in range(2):
        if ask:  # other blocks encoded too: a misread request would find one of them
            for num in range(4):
                for szx in range(7):
                    fast.handle(request([p.encode() for p in path], extra=block2(num, szx)))
        before = repository.blocks_sent, repository.bytes_sent
        reply = fast.handle(datagram, allowed=allowed) or b""
        counted.append((repository.blocks_sent - before[0], repository.bytes_sent - before[1]))
        answers.append(coapframe.parse(reply)._replace(mid=0))  # NON: a fresh mid each

    assert answers[0] == answers[1] and counted[0] == counted[1]
    assert counted[0][0] == (answers[0].code == coapframe.CONTENT)


def test_memory_grows_with_images_not_devices() -> None:
    """1,000 devices offered one 64 KiB image and each fetching four blocks cost a small
    record each: the bytes and the encoded blocks are held once, for the image."""
    repository = FirmwareRepository()
    image = bytes(range(256)) * 256
    fast = FastPath(repository)
    repository.offer("warm-up", "img", image)  # the image and its blocks, held once
    for num in range(4):
        fast.handle(request([b"fw", repository.offers()[0].token.encode()],
                            extra=block2(num, 6)))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(1000):
        token = repository.offer(f"dev-{n}", "img", image).rsplit("/", 1)[1].encode()
        for num in range(4):
            reply = fast.handle(request([b"fw", token], extra=block2(num, 6)))
            assert coapframe.parse(reply or b"").payload == image[num * 1024:(num + 1) * 1024]
    per_device = (tracemalloc.get_traced_memory()[0] - before) / 1000
    tracemalloc.stop()
    assert repository.images_held() == 1
    assert per_device < 1024, f"{per_device:.0f} bytes per device"  # was ~85 KB
    for n in range(1000):
        repository.revoke(f"dev-{n}")
    repository.revoke("warm-up")
    assert repository.images_held() == 0 and len(repository) == 0


def test_an_expired_offer_answers_not_found_and_a_restored_one_serves_again() -> None:
    now = [1000.0]
    repository = FirmwareRepository(clock=lambda: now[0], lifetime=60)
    token = repository.offer("dev-a", "img", IMAGE).rsplit("/", 1)[1]
    record = repository.offers()[0].record
    assert record.expires_at == 1060.0
    now[0] += 61
    assert repository.served(token) is None and len(repository) == 0
    assert repository.images_held() == 0

    restarted = FirmwareRepository(clock=lambda: 1000.0)
    restarted.restore(record, IMAGE)
    reply = FastPath(restarted).handle(request([b"fw", token.encode()], extra=block2(0, 6)))
    assert coapframe.parse(reply or b"").payload == IMAGE[:1024]
