"""Reference-style identifiers: base-24 digits 0-9a-n, like `17dh0cf43jfgnk`.

Used by `fota publish` and the manifest loader to assign ids, and by the API to tell a
malformed id (400) from an unknown one (404).
"""

from __future__ import annotations

import re
import secrets
import time

ALPHABET = "0123456789abcdefghijklmn"
ID_RE = re.compile(r"^[0-9a-n]{4,16}$")
_RANDOM_BITS = 20


def is_valid_id(value: str) -> bool:
    """True when `value` is a well-formed id (4 to 16 base-24 digits)."""
    return bool(ID_RE.match(value))


def encode_base24(number: int) -> str:
    """Encode a non-negative integer in the id alphabet."""
    if number < 0:
        raise ValueError("ids encode non-negative integers")
    digits = []
    while True:
        number, rest = divmod(number, 24)
        digits.append(ALPHABET[rest])
        if number == 0:
            return "".join(reversed(digits))


def new_id(now_ms: int | None = None) -> str:
    """A fresh id: milliseconds since the epoch and 20 random bits, so ids sort by creation
    time like the reference's and two ids made in the same millisecond still differ."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return encode_base24((ms << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS))
