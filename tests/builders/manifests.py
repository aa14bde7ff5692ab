"""A small valid desired-state tree on disk that each test breaks in one place."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

ONE = b"\x3d\xb8\xf3\x96" + b"zephyr 1.0.0 " * 300
TWO = b"\x3d\xb8\xf3\x96" + b"zephyr 1.1.0 " * 320

COLLECTION = """\
collectionId: 1000aaaa
name: Fleet
firmware:
  management: collection
  target: "1.0.0"
"""

DEVICES = """\
devices:
- {"deviceId": "2000aaaa", "endpoint": "urn:imei:352656100000001", "target": "1.1.0", "tags": {}}
- {"deviceId": "2000aaab", "endpoint": "urn:imei:352656100000002"}
"""


def images_yaml(one: bytes = ONE, two: bytes = TWO) -> str:
    """images.yaml declaring `one` as 1.0.0 and `two` as 1.1.0 (ids 3000aaaa, 3000aaab)."""
    entries = (("3000aaaa", "1.0.0", one), ("3000aaab", "1.1.0", two))
    return "images:\n" + "".join(
        f"  - imageId: {image_id}\n"
        f'    version: "{version}"\n'
        f"    path: images/fleet/zephyr-{version}.signed.bin\n"
        f"    sha256: {hashlib.sha256(data).hexdigest()}\n"
        f"    length: {len(data)}\n"
        f"    created: {1700000000000 + n}\n"
        for n, (image_id, version, data) in enumerate(entries))


class Tree:
    """A repository directory; `write` dedents so tests read like the files they make."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, path: str, text: str) -> Path:
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(textwrap.dedent(text))
        return full

    def binary(self, path: str, data: bytes) -> Path:
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        return full

    def valid(self) -> Tree:
        self.write("manifests/fleet/collection.yaml", COLLECTION)
        self.write("manifests/fleet/images.yaml", images_yaml())
        self.write("manifests/fleet/devices/a.yaml", DEVICES)
        self.binary("images/fleet/zephyr-1.0.0.signed.bin", ONE)
        self.binary("images/fleet/zephyr-1.1.0.signed.bin", TWO)
        return self

