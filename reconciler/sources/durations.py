"""The one duration syntax of the manifests: a whole number and a unit, `30s`, `15m`,
`2h`, `1d`. Used by the schema (window durations, wave soak times) to check and convert
what a reviewer reads into seconds.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_HINT = 'write a duration like "30s", "15m", "2h" or "1d"'


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError (with `DURATION_HINT`) when it is not a duration."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(DURATION_HINT)
    return float(int(match.group(1)) * _UNIT[match.group(2)])


def format_duration(seconds: float) -> str:
    """The shortest exact form, `2h` for 7200: what a plan or a message shows."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"
