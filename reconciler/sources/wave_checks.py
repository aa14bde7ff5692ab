"""Warnings about a valid desired state's waves and windows that `fota validate` prints
without failing: a wave or a maintenance window selecting by a tag key no device of its
collection has selects nobody, which is almost always a typo (`site` vs `sites`), yet
valid while devices are added.

Called by `reconciler.sources.validate_cmd` after a successful load; reads each
`collection.yaml` again for the lines (the model keeps no positions).
"""

from __future__ import annotations

from pathlib import Path

from reconciler.model.desired import DesiredState
from reconciler.sources.parsing import parse_collection
from reconciler.sources.problems import Problem
from reconciler.sources.schema import derive_id

MANIFESTS = "manifests"


def wave_warnings(root: Path, state: DesiredState) -> list[Problem]:
    """One warning per wave or window tag key no device of its collection carries."""
    keys: dict[str, set[str]] = {}
    for device in state.devices.values():
        keys.setdefault(device.collection_id, set()).update(device.tags)
    found: list[Problem] = []
    for path in sorted((root / MANIFESTS).glob("*/collection.yaml")):
        relative = path.relative_to(root).as_posix()
        doc = parse_collection(path.read_text(encoding="utf-8"))
        value = doc.value if isinstance(doc.value, dict) else {}
        collection_id = value.get("collectionId") or derive_id(
            "collection", path.parent.relative_to(root).as_posix())
        rollout = value.get("rollout") or {}
        for kind in ("waves", "windows"):
            for index, entry in enumerate(rollout.get(kind) or []):
                for key in entry.get("tags") or {}:
                    if key in keys.get(collection_id, set()):
                        continue
                    field = f"rollout.{kind}[{index}].tags.{key}"
                    message = (f"no device of collection {collection_id} has the tag "
                               f"{key!r}: {kind[:-1]} {entry.get('name', index)} selects "
                               "no device")
                    found.append(Problem(relative, doc.line_of(field), field, message))
    return found
