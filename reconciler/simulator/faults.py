"""The faults a simulated device can be told to have, and spreading them over a fleet.

Each fault is a device behaviour the controller must cope with (see `device` for where it
bites): the link dropping mid-download (Update Result 4), a corrupted image (5), a package
it refuses (6), a failed install (8), a bootloader that reverts to the old image after the
reboot, a device that goes off the air, and a slow link. `--fault KIND:SHARE` picks a
share of the fleet deterministically (seeded). Used by `fleet` and `cmd`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from enum import StrEnum


class Fault(StrEnum):
    CONNECTION_LOST = "connection-lost"  # download stops half way: Idle, result 4
    INTEGRITY = "integrity"  # the downloaded bytes fail verification: Idle, result 5
    UNSUPPORTED = "unsupported"  # the package is refused: Idle, result 6
    UPDATE_FAILED = "update-failed"  # Execute fails: back to Downloaded, result 8
    REVERT = "revert"  # reboots, but comes back on the old version
    SILENT = "silent"  # goes off the air once an update starts: no answers, no Updates
    SLOW = "slow"  # every block waits `slow_block_delay` seconds


def parse_fault_share(text: str) -> tuple[Fault, float]:
    """`KIND:SHARE` (share in 0..1, or a percentage like `10%`) -> (fault, share)."""
    kind, sep, share_text = text.partition(":")
    try:
        fault = Fault(kind.strip())
    except ValueError:
        choices = ", ".join(f.value for f in Fault)
        raise ValueError(f"unknown fault {kind!r}; choose from {choices}") from None
    if not sep:
        return fault, 1.0
    try:
        share = (float(share_text.rstrip("%")) / 100.0 if share_text.endswith("%")
                 else float(share_text))
    except ValueError:
        raise ValueError(f"fault share must be a number: {text!r}") from None
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"fault share must be between 0 and 1 (or 0%..100%): {text!r}")
    return fault, share


def assign_faults(endpoints: Sequence[str], shares: Sequence[tuple[Fault, float]],
                  seed: int = 0) -> dict[str, frozenset[Fault]]:
    """Give each fault to round(share * N) distinct devices, chosen by a seeded shuffle."""
    chosen: dict[str, set[Fault]] = {ep: set() for ep in endpoints}
    rng = random.Random(seed)
    for fault, share in shares:
        picked = list(endpoints)
        rng.shuffle(picked)
        for endpoint in picked[: round(share * len(endpoints))]:
            chosen[endpoint].add(fault)
    return {ep: frozenset(faults) for ep, faults in chosen.items()}
