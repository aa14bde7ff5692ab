"""`version_key` / `image_order`: the one natural order of firmware version strings.

"1.10.0" sorts after "1.9.0": a version is split into runs of digits, compared as numbers,
and runs of anything else, compared as text. `DesiredState.images_of` and the store's
image list (`reconciler.store.reader`) both sort with it, so every caller lists a
collection's images in the same order. Pure; imports nothing of ours.
"""

from __future__ import annotations

import re
from typing import Protocol

_RUNS = re.compile(r"(\d+)")

# A run is (0, digit count, digits) or (1, 0, text). The leading tag keeps numbers and text
# apart and puts a number before text at the same position. A number is compared by its
# length without leading zeros, then its digits: the numeric order without int(), which
# refuses runs of more than 4300 digits.
Run = tuple[int, int, str]


def version_key(version: str) -> tuple[tuple[Run, ...], str]:
    """Sort key for `version`: natural order, then the raw text so that versions equal
    as numbers ("1.01" and "1.1") still have one fixed order."""
    runs: list[Run] = []
    for index, part in enumerate(_RUNS.split(version)):
        if not part:
            continue
        if index % 2:
            digits = part.lstrip("0")
            runs.append((0, len(digits), digits))
        else:
            runs.append((1, 0, part))
    return tuple(runs), version


class Versioned(Protocol):
    @property
    def version(self) -> str: ...
    @property
    def image_id(self) -> str: ...


def image_order(image: Versioned) -> tuple[tuple[tuple[Run, ...], str], str]:
    """Sort key of a firmware image: natural version order, ties broken by image id."""
    return version_key(image.version), image.image_id
