"""Parsing of the LwM2M registration interface's requests: pure, no aiocoap.

Turns the query options and CoRE link-format payload of Register (`POST /rd?ep=...`) and
Update (`POST /rd/<id>?lt=...`) into `RegisterParams` / `UpdateParams`, accepting what
LwM2M 1.0, 1.1 and 1.2 clients send (defaults lt=86400, lwm2m=1.0, b=U; the `Q` flag of
1.1+; an optional `</>` or alternate root link with rt="oma.lwm2m"). Anything malformed
raises `Rejected` carrying the CoAP code and a diagnostic; `rd_resources.py` renders it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.lwm2m.codecs import CodecError, Link, parse_link_format

DEFAULT_LIFETIME = 86400
DEFAULT_VERSION = "1.0"
DEFAULT_BINDING = "U"
MAX_LIFETIME = 2**32 - 1
MAX_ENDPOINT_LENGTH = 255
LINK_FORMAT = 40
_BINDING_RE = re.compile(r"^[UMHTSNQ]{1,7}$")
_VERSION_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})(?:\.\d{1,3})?$")
_OBJECT_PATH_RE = re.compile(r"^(/\d{1,5}){1,2}$")


class Rejected(ValueError):
    """A request the registration interface refuses; `code` is the dotted CoAP code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class RegisterParams:
    endpoint: str
    lifetime: int
    lwm2m_version: str
    binding: str
    queue_mode: bool
    object_links: tuple[str, ...]
    root_content_format: int | None  # the `ct` of the `</>` root link, when given


@dataclass(frozen=True, slots=True)
class UpdateParams:
    lifetime: int | None
    binding: str | None
    queue_mode: bool | None  # None: unchanged
    object_links: tuple[str, ...] | None  # None: payload absent, links unchanged


def split_query(options: Sequence[str]) -> dict[str, str | None]:
    """Uri-Query options -> {name: value or None for a bare flag such as `Q`}."""
    query: dict[str, str | None] = {}
    for option in options:
        name, sep, value = option.partition("=")
        if name in query:
            raise Rejected("4.00", f"query parameter {name!r} given twice")
        query[name] = value if sep else None
    return query


def parse_register(
    query: dict[str, str | None], payload: bytes, content_format: int | None
) -> RegisterParams:
    endpoint = query.get("ep")
    if not endpoint:
        raise Rejected("4.00", "missing endpoint client name (ep)")
    if len(endpoint.encode()) > MAX_ENDPOINT_LENGTH:
        raise Rejected("4.00", "endpoint client name (ep) is too long")
    version = _version(query.get("lwm2m", DEFAULT_VERSION))
    binding = _binding(query.get("b", DEFAULT_BINDING))
    links, root_ct = parse_object_links(payload, content_format)
    return RegisterParams(
        endpoint=endpoint,
        lifetime=_lifetime(query.get("lt", str(DEFAULT_LIFETIME))),
        lwm2m_version=version,
        binding=binding.replace("Q", "") or DEFAULT_BINDING,
        queue_mode="Q" in binding or "Q" in query,  # 1.0 clients say UQ, 1.1+ say Q
        object_links=links,
        root_content_format=root_ct,
    )


def parse_update(
    query: dict[str, str | None], payload: bytes, content_format: int | None
) -> UpdateParams:
    lifetime = _lifetime(query["lt"]) if "lt" in query else None
    binding = _binding(query["b"]) if "b" in query else None
    links = parse_object_links(payload, content_format)[0] if payload else None
    return UpdateParams(
        lifetime=lifetime,
        binding=None if binding is None else binding.replace("Q", "") or DEFAULT_BINDING,
        queue_mode=None if binding is None else "Q" in binding,
        object_links=links,
    )


def _lifetime(text: str | None) -> int:
    if text is None or not text.isdigit() or not 0 < int(text) <= MAX_LIFETIME:
        raise Rejected("4.00", f"lifetime (lt) must be a positive integer, got {text!r}")
    return int(text)


def _version(text: str | None) -> str:
    match = _VERSION_RE.match(text or "")
    if match is None:
        raise Rejected("4.00", f"malformed LwM2M version (lwm2m): {text!r}")
    if match.group(1) != "1":
        # OMA 1.1 §6.2.1: a server that does not support the version answers 4.12
        raise Rejected("4.12", f"unsupported LwM2M version {text}")
    return f"{match.group(1)}.{match.group(2)}"


def _binding(text: str | None) -> str:
    if text is None or not _BINDING_RE.match(text) or len(set(text)) != len(text):
        raise Rejected("4.00", f"malformed binding mode (b): {text!r}")
    return text


def parse_object_links(
    payload: bytes, content_format: int | None
) -> tuple[tuple[str, ...], int | None]:
    """The object links of a Register/Update payload and the root link's `ct`, if any."""
    if content_format not in (None, LINK_FORMAT):
        raise Rejected("4.15", f"registration payload must be link-format, not {content_format}")
    try:
        links = parse_link_format(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise Rejected("4.00", "registration payload is not UTF-8") from None
    except CodecError as exc:
        raise Rejected("4.00", f"malformed link-format payload: {exc}") from None
    root, root_ct = _root(links)
    paths = tuple(
        _object_path(link.target, root) for link in links if link.target.rstrip("/") != root
    )
    return paths, root_ct


def _root(links: list[Link]) -> tuple[str, int | None]:
    """The alternate root path ("" for `</>`) announced with rt="oma.lwm2m"."""
    for link in links:
        if link.get("rt") == "oma.lwm2m":
            # 1.2 lists every supported format: ct="60 110 112 11543"; the first is kept.
            formats = (link.get("ct") or "").split()
            first = formats[0] if formats else ""
            return link.target.rstrip("/"), int(first) if first.isdigit() else None
    return "", None


def _object_path(target: str, root: str) -> str:
    path = target[len(root) :] if root and target.startswith(root + "/") else target
    if not _OBJECT_PATH_RE.match(path) or any(int(p) > 65535 for p in path.split("/")[1:]):
        raise Rejected("4.00", f"not an object or object instance link: <{target}>")
    return path
