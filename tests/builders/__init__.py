"""Builders shared by every test: desired-state values (`desired`), observed values
(`observed`), the engine's view of a device (`engine`) and on-disk manifest trees
(`manifests`). `tests/` is on pytest's pythonpath: tests write `from builders import ...`.
"""

from builders.desired import (
    CID,
    NEW,
    OLD,
    collection,
    desired_state,
    device,
    image,
    one_device,
)
from builders.observed import T0, registration, report

__all__ = ["CID", "NEW", "OLD", "T0", "collection", "desired_state", "device", "image",
           "one_device", "registration", "report"]
