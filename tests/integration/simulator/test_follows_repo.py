"""`fota simulate --repo` follows the repository: an image published while the fleet runs
is accepted (the catalog is read again when an unknown package arrives)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiocoap
from builders.manifests import Tree

from reconciler.cli import main
from reconciler.lwm2m.codecs import ContentFormat
from reconciler.model.lwm2m import FirmwareState, UpdateResult
from reconciler.simulator import DeviceSpec
from reconciler.simulator.manifests import RepoCatalog

BUILD = b"\x3d\xb8\xf3\x96" + b"zephyr 9.9.9 " * 200  # not a self-describing package


async def test_a_simulator_started_before_fota_publish_accepts_the_new_image(
        server: Any, launch: Any, tmp_path: Path) -> None:
    tree = Tree(tmp_path / "repo").valid()
    catalog = RepoCatalog(tree.root)
    known_at_start = len(catalog)
    fleet = await launch(DeviceSpec("f", version="1.0.0", block_size=256), catalog=catalog)
    build = tmp_path / "zephyr-9.9.9.bin"
    build.write_bytes(BUILD)
    assert main(["publish", str(build), "--collection", "1000aaaa", "--version", "9.9.9",
                 "--repo", str(tree.root)]) == 0

    uri = server.offer("f-image", BUILD)
    written = await server.request("f", aiocoap.PUT, "/5/0/1", payload=uri.encode(),
                                   content_format=int(ContentFormat.TEXT))
    assert written.code == aiocoap.CHANGED
    device = fleet.device("f")
    await device.wait_for(lambda: device.state is not FirmwareState.DOWNLOADING)

    assert (device.state, device.result) == (FirmwareState.DOWNLOADED, UpdateResult.INITIAL)
    assert device.fw.pkg_version == "9.9.9" and len(catalog) == known_at_start + 1
