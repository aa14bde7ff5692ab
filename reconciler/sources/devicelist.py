"""Device list files (`manifests/<collection>/devices/*.yaml`) into compact columns.

The canonical form is one device per line in JSON-compatible flow style under a
`devices:` header; such a file is read with `json.loads` per line (about 50x faster than
a YAML parser, line numbers for free). Any file not in that form is read by the general
YAML path instead, and both paths give identical `DeviceRows`. Called through
`reconciler.sources.parsing`, whose cache stores the rows per git blob.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from reconciler.model.ids import is_valid_id
from reconciler.sources.problems import LocalProblem, by_line
from reconciler.sources.schema import (
    DEVICE_LIST,
    DevicesDoc,
    derive_id,
    error_problems,
    malformed_id,
    salvaged,
    schema_problems,
)
from reconciler.sources.yamlload import read_yaml

# Characters where YAML and JSON could read a line differently (YAML's extra line breaks,
# characters YAML refuses); a file containing any of them takes the YAML path.
_UNSAFE = re.compile("[\\\\\t\r\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_HEADER = "devices:"


@dataclass
class DeviceRows:
    """Valid devices of one file as columns (cheap to cache), plus the file's problems."""

    lines: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # index in the file's `devices:`
    ids: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    targets: list[str | None] = field(default_factory=list)
    tags: dict[int, dict[str, str]] = field(default_factory=dict)  # row -> tags, when any
    field_lines: dict[str, int] = field(default_factory=dict)  # where not the entry's line
    problems: list[LocalProblem] = field(default_factory=list)
    fast: bool = False
    retries: dict[int, int] = field(default_factory=dict)  # row -> retry, when not 0
    security: dict[int, str] = field(default_factory=dict)  # row -> "psk"/"none", when given

    def line_of(self, row: int, name: str) -> int:
        path = f"devices[{self.positions[row]}].{name}"
        return self.field_lines.get(path, self.lines[row])

    def to_wire(self) -> tuple[Any, ...]:
        return (self.lines, self.positions, self.ids, self.endpoints, self.targets,
                self.tags, self.field_lines, self.problems, self.retries, self.security,
                self.fast)

    @classmethod
    def from_wire(cls, wire: tuple[Any, ...]) -> DeviceRows:
        lines, positions, ids, endpoints, targets, tags, field_lines = wire[:7]
        problems = [(p[0], p[1], p[2]) for p in wire[7]]
        return cls(lines, positions, ids, endpoints, targets, tags, field_lines, problems,
                   wire[10], wire[8], wire[9])


def parse_devices(text: str, fast: bool = True) -> DeviceRows:
    """Rows of a device list file; `fast=False` forces the YAML path (tests compare)."""
    entries = fast_entries(text) if fast else None
    if entries is not None:
        rows = _fill(DeviceRows(fast=True), entries, {})
        rows.problems.sort(key=by_line)  # as the YAML path: a stable sort by line
        return rows
    doc = read_yaml(text)
    rows = DeviceRows(problems=list(doc.problems) + _check_top(doc.value, doc.lines))
    # Entries are checked even beside a top-level problem: every problem in one run.
    items = doc.value.get("devices") if isinstance(doc.value, dict) else None
    if isinstance(items, list):
        entries = [(doc.lines[f"devices[{i}]"], item) for i, item in enumerate(items)]
        _fill(rows, entries, doc.lines, doc.written)
    rows.problems.sort(key=by_line)
    return rows


def fast_entries(text: str) -> list[tuple[int, Any]] | None:
    """(line, mapping) per device when the whole file is in the one-line form, else None.

    Equivalence with YAML: no escapes or odd characters (checked once per file), no floats
    or NaN/Infinity (YAML 1.1 reads `1e5` and `NaN` as strings), and as many `":` as
    parsed keys, so a duplicate key (JSON keeps the last silently) sends the file to the
    YAML path, which reports it."""
    if _UNSAFE.search(text):
        return None
    entries: list[tuple[int, Any]] = []
    header = False
    loads = _DECODER.decode
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("- {"):
            try:
                entry = loads(line[2:])
            except ValueError:
                return None
            if not header or not _keys_match(line, entry):
                return None
            entries.append((number, entry))
        elif not header and not entries and line.rstrip() == _HEADER:
            header = True
        elif line.strip() and not line.lstrip().startswith("#"):
            return None
    return entries if entries else None  # `devices:` alone is null in YAML


def _no_float(text: str) -> float:
    raise ValueError("floats and constants take the YAML path")


# One decoder for all lines: json.loads with options would build a new one per call.
_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)


def _keys_match(line: str, entry: Any) -> bool:
    if type(entry) is not dict:
        return False
    keys = len(entry)
    tags = entry.get("tags")
    if type(tags) is dict:
        keys += len(tags)
    return line.count('":') == keys


def _check_top(value: Any, lines: dict[str, int]) -> list[LocalProblem]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [(lines.get("", 1), "", "expected a mapping with a `devices:` list")]
    try:
        DevicesDoc.model_validate(value)
        return []
    except ValidationError as exc:
        return schema_problems(exc, "", lambda p: lines.get(p, lines.get("", 1)))


def _fill(rows: DeviceRows, entries: list[tuple[int, Any]], lines: dict[str, int],
          written: dict[str, str] | None = None) -> DeviceRows:
    bad = _schema_errors(rows, entries, lines, written)
    for index, (line, entry) in enumerate(entries):
        if index in bad:
            # Reported already; what is left of it (its endpoint, its target) still
            # meets the cross-file rules, so one CI round shows every problem.
            entry = _salvaged_entry(entry)
            if entry is None:
                continue
        row = len(rows.lines)
        endpoint = entry["endpoint"]
        device_id = entry.get("deviceId")
        if device_id is None:
            device_id = derive_id("device", endpoint)
        elif not is_valid_id(device_id):
            where = lines.get(f"devices[{index}].deviceId", line)
            rows.problems.append((where, f"devices[{index}].deviceId", malformed_id(device_id)))
            continue
        rows.lines.append(line)
        rows.positions.append(index)
        rows.ids.append(device_id)
        rows.endpoints.append(endpoint)
        rows.targets.append(entry.get("target"))
        if entry.get("tags"):
            rows.tags[row] = entry["tags"]
        if entry.get("retry"):
            rows.retries[row] = entry["retry"]
        if "security" in entry:
            rows.security[row] = entry["security"]
        if lines:  # the YAML path; the fast path has every field on the entry's line
            _keep_field_lines(rows, index, line, lines)
    return rows


def _schema_errors(
    rows: DeviceRows, entries: list[tuple[int, Any]], lines: dict[str, int],
    written: dict[str, str] | None,
) -> set[int]:
    errors = _validated_in_slices([entry for _, entry in entries])
    if not errors:
        return set()

    def line_of(path: str) -> int:
        index = int(path[len("devices["):].split("]")[0])
        return lines.get(path, entries[index][0])

    rows.problems.extend(error_problems(errors, "devices", line_of, written))
    return {int(e["loc"][0]) for e in errors if e["loc"]}


# Entries per pydantic call: one call holds the GIL throughout, and so every other
# thread (the event loop's) waits for it: 150 ms for a 200,000-device file.
VALIDATE_SLICE = 2_000


def _validated_in_slices(values: list[Any]) -> list[ErrorDetails]:
    """Every schema error of `values`, located by the index in the whole list."""
    errors: list[ErrorDetails] = []
    for first in range(0, len(values), VALIDATE_SLICE):
        try:
            DEVICE_LIST.validate_python(values[first:first + VALIDATE_SLICE])
        except ValidationError as exc:
            errors += [_shifted(error, first) for error in exc.errors(include_url=False)]
    return errors


def _shifted(error: ErrorDetails, by: int) -> ErrorDetails:
    loc = error["loc"]
    if not loc or not isinstance(loc[0], int):
        return error
    return {**error, "loc": (loc[0] + by, *loc[1:])}


def _salvaged_entry(entry: Any) -> Any:
    """The entry without the fields the schema refused, or None (no endpoint left)."""
    try:
        return DEVICE_LIST.validate_python([entry])[0]
    except ValidationError as exc:  # locations are (0, key): inside the one-entry list
        kept = salvaged(DEVICE_LIST.validate_python, [entry], exc)
        return kept[0] if kept else None


def _keep_field_lines(rows: DeviceRows, index: int, line: int, lines: dict[str, int]) -> None:
    # Only lines that differ from the entry's own are kept: none at all in the fast form.
    for name in ("deviceId", "endpoint", "target", "tags", "retry", "security"):
        path = f"devices[{index}].{name}"
        where = lines.get(path)
        if where is not None and where != line:
            rows.field_lines[path] = where
