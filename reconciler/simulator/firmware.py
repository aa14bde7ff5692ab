"""How a simulated device judges a firmware package, pure: what version it holds, if any.

A real client verifies a signature or digest before it will install; ours accepts either
  * an image whose sha256 is in its catalog (sha256 -> version, e.g. gathered from the
    repo's image manifests by `fota simulate`), or
  * a self-describing simulator package: the line `FOTASIM1 <version> <sha256-of-body>\\n`
    followed by the body (`make_package` builds one, for tests and demos).
A marker whose digest does not match its body, or bytes neither form explains, is an
integrity failure (Update Result 5). Also parses Package URIs (Update Result 7 / 9).
Called by `device` when a download or push completes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from reconciler.model.lwm2m import UpdateResult

MARKER = b"FOTASIM1 "


@dataclass(frozen=True, slots=True)
class Verdict:
    result: UpdateResult  # INITIAL when the package is good
    version: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class PackageUri:
    host: str
    port: int
    path: tuple[str, ...]
    query: tuple[str, ...]
    secure: bool = False  # coaps://: fetched inside a DTLS session


def make_package(version: str, body: bytes = b"") -> bytes:
    """A self-describing package the simulator installs as `version`."""
    if not version or any(c.isspace() for c in version):
        raise ValueError(f"package version must be one word: {version!r}")
    digest = hashlib.sha256(body).hexdigest()
    return MARKER + f"{version} {digest}\n".encode() + body


def verify(data: bytes, catalog: Mapping[str, str]) -> Verdict:
    """Judge a complete package against the catalog (sha256 hex -> version)."""
    known = catalog.get(hashlib.sha256(data).hexdigest())
    if known is not None:
        return Verdict(UpdateResult.INITIAL, known, f"image-{known}")
    if not data.startswith(MARKER):
        return Verdict(UpdateResult.INTEGRITY_CHECK_FAILURE)
    header, _, body = data.partition(b"\n")
    fields = header[len(MARKER):].split(b" ")
    if len(fields) != 2 or hashlib.sha256(body).hexdigest().encode() != fields[1]:
        return Verdict(UpdateResult.INTEGRITY_CHECK_FAILURE)
    version = fields[0].decode("utf-8", "replace")
    return Verdict(UpdateResult.INITIAL, version, f"package-{version}")


def parse_uri(uri: str, secure: bool = False) -> PackageUri | UpdateResult:
    """A coap:// Package URI (coaps:// too for a device with a PSK: `secure`), or the
    Update Result that refuses it (7 invalid, 9 protocol)."""
    try:
        parts = urlsplit(uri.strip())
        port = parts.port
    except ValueError:
        return UpdateResult.INVALID_URI
    schemes = ("coap", "coaps") if secure else ("coap",)
    if parts.scheme in ("coaps", "coap+tcp", "coaps+tcp", "http", "https") \
            and parts.scheme not in schemes:
        return UpdateResult.UNSUPPORTED_PROTOCOL  # /5/0/8 announces what it speaks
    if parts.scheme not in schemes or not parts.hostname:
        return UpdateResult.INVALID_URI
    path = tuple(unquote(p) for p in parts.path.split("/")[1:] if p != "")
    query = tuple(unquote(q) for q in parts.query.split("&") if q)
    if parts.scheme == "coaps":
        return PackageUri(parts.hostname, port or 5684, path, query, secure=True)
    return PackageUri(parts.hostname, port or 5683, path, query)
