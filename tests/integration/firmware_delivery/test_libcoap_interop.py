"""libcoap's coap-client-notls (an independent CoAP stack) downloads our firmware
byte-exact at every block size from 16 to 1024, from each way we serve it.

Skipped when the binary is missing, unless FOTA_REQUIRE_LIBCOAP=1 (then it fails)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from builders.tools import finished, require_tool

from .conftest import Served

CLIENT = "coap-client-notls"
BLOCK_SIZES = [16, 32, 64, 128, 256, 512, 1024]


@pytest.fixture
def coap_client() -> str:
    return require_tool(CLIENT)


async def download(coap_client: str, uri: str, out: Path, *extra: str) -> tuple[int, bytes]:
    code, _, err = await finished(coap_client, "-B", "10", "-o", str(out), *extra, uri,
                                  timeout=20)
    return code, err


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
async def test_libcoap_downloads_the_image_byte_exact(
    coap_client: str, served: Served, base: str, tmp_path: Path, block_size: int
) -> None:
    image = os.urandom(3 * 1024 + 77)
    path = served.repository.offer("dev-a", "img", image)
    out = tmp_path / "image.bin"
    code, err = await download(coap_client, base + path, out, "-b", str(block_size))
    assert code == 0, err
    assert out.read_bytes() == image


async def test_libcoap_downloads_without_asking_for_a_block_size(
    coap_client: str, served: Served, base: str, tmp_path: Path
) -> None:
    image = os.urandom(2500)
    path = served.repository.offer("dev-a", "img", image)
    code, err = await download(coap_client, base + path, tmp_path / "image.bin")
    assert code == 0, err
    assert (tmp_path / "image.bin").read_bytes() == image


async def test_libcoap_gets_4_04_for_a_wrong_token(
    coap_client: str, served: Served, base: str, tmp_path: Path
) -> None:
    served.repository.offer("dev-a", "img", b"secret image")
    out = tmp_path / "image.bin"
    _, err = await download(coap_client, base + "/fw/guessed-token", out)
    assert err.startswith(b"4.04")
    assert not out.exists()
