"""RFC 7959 Block2 arithmetic (`select_block`), the repository's offers and its settings,
and that /.well-known/core never lists an offer, without sockets."""

from __future__ import annotations

import pytest
from aiocoap import resource
from hypothesis import given
from hypothesis import strategies as st

from reconciler.lwm2m.firmware import BlockError, FirmwareRepository, select_block


def test_a_first_request_without_block2_gets_the_whole_image_when_it_fits_one_block() -> None:
    choice = select_block(1024, None)
    assert (choice.start, choice.end, choice.blockwise, choice.more) == (0, 1024, False, False)


def test_a_first_request_without_block2_gets_block_zero_of_1024_when_the_image_is_larger() -> None:
    choice = select_block(1025, None)
    assert (choice.num, choice.szx, choice.end, choice.more, choice.blockwise) == (
        0,
        6,
        1024,
        True,
        True,
    )


def test_the_clients_smaller_block_size_is_honoured() -> None:
    choice = select_block(5000, (3, 0))
    assert (choice.start, choice.end, choice.szx, choice.more) == (48, 64, 0, True)


def test_a_client_may_switch_to_smaller_blocks_mid_transfer() -> None:
    first = select_block(5000, None)  # 1024 bytes at szx 6
    second = select_block(5000, (first.end // 256, 4))
    assert (second.start, second.end) == (1024, 1280)


def test_a_server_limit_below_the_clients_size_scales_the_block_number() -> None:
    choice = select_block(5000, (1, 6), max_szx=4)
    assert (choice.num, choice.szx, choice.start, choice.end) == (4, 4, 1024, 1280)


def test_the_last_block_says_no_more() -> None:
    choice = select_block(5000, (4, 6))
    assert (choice.start, choice.end, choice.more) == (4096, 5000, False)


def test_a_block_past_the_end_is_a_bad_option() -> None:
    with pytest.raises(BlockError, match="starts past the 5000-byte image") as caught:
        select_block(5000, (5, 6))
    assert caught.value.code == "4.02"


def test_szx_7_is_a_bad_request_over_udp() -> None:
    with pytest.raises(BlockError, match="reserved") as caught:
        select_block(5000, (0, 7))
    assert caught.value.code == "4.00"


def test_an_empty_image_is_one_empty_block() -> None:
    choice = select_block(0, (0, 2))
    assert (choice.start, choice.end, choice.more) == (0, 0, False)


@given(size=st.integers(0, 5000), szx=st.integers(0, 6))
def test_the_blocks_of_any_image_tile_it_exactly(size: int, szx: int) -> None:
    data = bytes(i & 0xFF for i in range(size))
    pieces, num = [], 0
    while True:
        choice = select_block(size, (num, szx))
        pieces.append(data[choice.start : choice.end])
        if not choice.more:
            break
        num += 1
    assert b"".join(pieces) == data
    assert num == max(0, -(-size // (16 << szx)) - 1)


def test_offers_carry_an_unguessable_token_per_device() -> None:
    repository = FirmwareRepository()
    a = repository.offer("dev-a", "img-1", b"one")
    b = repository.offer("dev-b", "img-1", b"one")
    assert a.startswith("/fw/") and b.startswith("/fw/") and a != b
    assert len(a.removeprefix("/fw/")) >= 24


def test_offering_the_same_image_again_keeps_the_path_and_a_new_one_replaces_it() -> None:
    repository = FirmwareRepository()
    first = repository.offer("dev-a", "img-1", b"one")
    assert repository.offer("dev-a", "img-1", b"one") == first
    second = repository.offer("dev-a", "img-2", b"two")
    assert second != first
    assert repository.lookup(first.removeprefix("/fw/")) is None
    image = repository.served(second.removeprefix("/fw/"))
    assert image is not None and image.data == b"two" and len(repository) == 1


def test_revoking_forgets_the_offer() -> None:
    repository = FirmwareRepository()
    path = repository.offer("dev-a", "img-1", b"one")
    repository.revoke("dev-a")
    repository.revoke("dev-unknown")
    assert repository.lookup(path.removeprefix("/fw/")) is None and len(repository) == 0


@pytest.mark.parametrize("max_szx", [-1, 7])
def test_a_block_size_limit_outside_rfc_7959_is_refused(max_szx: int) -> None:
    with pytest.raises(ValueError, match=r"max_szx must be 0\.\.6"):
        FirmwareRepository(max_szx=max_szx)


def test_well_known_core_lists_the_site_but_never_an_offer_path() -> None:
    repository, site = FirmwareRepository(), resource.Site()
    repository.mount(site)
    site.add_resource(("other",), resource.Resource())
    token = repository.offer("dev-a", "img", b"image").rsplit("/", 1)[1]
    links = str(site.get_resources_as_linkheader())
    assert links == "</other>" and token not in links
