"""A CoAP frame codec (RFC 7252 §3): datagrams to fields and back, without aiocoap.

Parses a datagram's header, token, options and payload (`parse`), and builds responses
(`build`, `encode_options`) with the option delta/length encoding of RFC 7252 §3.1. Pure
functions over bytes, used by `fastpath.py` (firmware block GETs), `hardening.py` (the format
check of every datagram the server receives) and the simulator's block client (`pull.py`);
anything that is not well-formed raises `FormatError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

CON, NON, ACK, RST = 0, 1, 2, 3
EMPTY = 0x00
GET = 0x01
CONTENT = 0x45  # 2.05
BAD_REQUEST = 0x80  # 4.00
BAD_OPTION = 0x82  # 4.02
NOT_FOUND = 0x84  # 4.04
METHOD_NOT_ALLOWED = 0x85  # 4.05
NOT_ACCEPTABLE = 0x86  # 4.06
INTERNAL_SERVER_ERROR = 0xA0  # 5.00
PROXYING_NOT_SUPPORTED = 0xA5  # 5.05

IF_MATCH, URI_HOST, ETAG, OBSERVE, URI_PORT = 1, 3, 4, 6, 7
URI_PATH, CONTENT_FORMAT, URI_QUERY, ACCEPT = 11, 12, 15, 17
BLOCK2, BLOCK1, SIZE2, PROXY_URI, PROXY_SCHEME = 23, 27, 28, 35, 39


class FormatError(ValueError):
    """A datagram that is not a well-formed CoAP message (RFC 7252 §3)."""


class Datagram(NamedTuple):
    """A parsed message (a NamedTuple: the fast path builds one per datagram)."""

    mtype: int
    code: int
    mid: int
    token: bytes
    options: tuple[tuple[int, bytes], ...]
    payload: bytes

    def values(self, number: int) -> list[bytes]:
        return [value for num, value in self.options if num == number]


def header_fields(data: bytes) -> tuple[int, int, int] | None:
    """(version, type, message id) of anything at least 4 bytes long, else None."""
    if len(data) < 4:
        return None
    return data[0] >> 6, (data[0] >> 4) & 0x03, (data[2] << 8) | data[3]


def parse(data: bytes) -> Datagram:
    if len(data) < 4:
        raise FormatError("shorter than the 4-byte header")
    if data[0] >> 6 != 1:
        raise FormatError(f"version {data[0] >> 6}")
    tkl = data[0] & 0x0F
    if tkl > 8:
        raise FormatError(f"token length {tkl}")
    if len(data) < 4 + tkl:
        raise FormatError("truncated token")
    code = data[1]
    if code == EMPTY and len(data) != 4:
        raise FormatError("an empty message carries nothing after the header")
    options, pos = _parse_options(data, 4 + tkl)
    payload = data[pos + 1 :] if pos < len(data) else b""
    if pos < len(data) and not payload:
        raise FormatError("payload marker without a payload")
    mid = (data[2] << 8) | data[3]
    return Datagram((data[0] >> 4) & 0x03, code, mid, data[4 : 4 + tkl], options, payload)


def _parse_options(data: bytes, pos: int) -> tuple[tuple[tuple[int, bytes], ...], int]:
    """Options up to the payload marker; returns them and the marker's position (or len)."""
    options: list[tuple[int, bytes]] = []
    number, end = 0, len(data)
    while pos < end and data[pos] != 0xFF:
        delta, length = data[pos] >> 4, data[pos] & 0x0F
        pos += 1
        if delta >= 13:  # the common small deltas and lengths skip these calls
            delta, pos = _extended(data, pos, delta)
        if length >= 13:
            length, pos = _extended(data, pos, length)
        if pos + length > end:
            raise FormatError("option value runs past the end")
        number += delta
        options.append((number, data[pos : pos + length]))
        pos += length
    return tuple(options), pos


def _extended(data: bytes, pos: int, nibble: int) -> tuple[int, int]:
    if nibble < 13:
        return nibble, pos
    if nibble == 15:
        raise FormatError("reserved option nibble 15")
    size = 1 if nibble == 13 else 2
    if pos + size > len(data):
        raise FormatError("truncated extended option field")
    value = int.from_bytes(data[pos : pos + size], "big")
    return value + (13 if nibble == 13 else 269), pos + size


def encode_options(options: Iterable[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    previous = 0
    for number, value in sorted(options, key=lambda option: option[0]):
        delta, length = number - previous, len(value)
        d_nib, d_ext = _nibble(delta)
        l_nib, l_ext = _nibble(length)
        out.append(d_nib << 4 | l_nib)
        out += d_ext + l_ext + value
        previous = number
    return bytes(out)


def _nibble(value: int) -> tuple[int, bytes]:
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes([value - 13])
    return 14, (value - 269).to_bytes(2, "big")


def uint(value: int) -> bytes:
    """The minimal big-endian form of a uint option value (zero is empty)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def build(mtype: int, code: int, mid: int, token: bytes, tail: bytes = b"") -> bytes:
    """A message from its header fields and the already-encoded options and payload."""
    return bytes((0x40 | mtype << 4 | len(token), code, mid >> 8, mid & 0xFF)) + token + tail


def tail(options: Iterable[tuple[int, bytes]], payload: bytes = b"") -> bytes:
    encoded = encode_options(options)
    return encoded + b"\xff" + payload if payload else encoded


def reset_for(data: bytes) -> bytes | None:
    """The Reset a malformed Confirmable earns (RFC 7252 §4.2); None for anything else."""
    fields = header_fields(data)
    if fields is None or fields[0] != 1 or fields[1] != CON:
        return None
    return reset(fields[2])


def reset(mid: int) -> bytes:
    return build(RST, EMPTY, mid, b"")
