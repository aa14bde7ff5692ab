"""The one-line fast path and the general YAML path read device lists identically."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.sources.devicelist import VALIDATE_SLICE, DeviceRows, parse_devices

ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs",))
TEXT = st.text(ALPHABET, min_size=1, max_size=12)


def same(text: str) -> tuple[DeviceRows, DeviceRows]:
    fast, slow = parse_devices(text), parse_devices(text, fast=False)
    assert not slow.fast
    return fast, slow


def comparable(rows: DeviceRows) -> tuple[object, ...]:
    return rows.to_wire()[:-1]  # everything but the flag saying which path ran


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(TEXT, inner, max_size=2),
    max_leaves=4,
)
entries = st.fixed_dictionaries(
    {"endpoint": TEXT},
    optional={"deviceId": st.sampled_from(["2000aaaa", "2000aaab", "bad-ID"]),
              "target": st.one_of(st.none(), TEXT, JSON),
              "tags": st.dictionaries(TEXT, TEXT, max_size=2) | JSON,
              "retry": st.integers(-2, 3) | JSON,
              "security": st.sampled_from(["psk", "none", "PSK"]) | JSON,
              "extra": JSON},
)


@settings(max_examples=60, deadline=None)
@given(st.lists(entries, max_size=5), st.booleans())
def test_both_paths_give_identical_rows_for_any_one_line_file(
    devices: list[dict[str, object]], comment: bool
) -> None:
    lines = ["# fleet", "devices:"] if comment else ["devices:"]
    lines += ["- " + json.dumps(d, ensure_ascii=False) for d in devices]
    fast, slow = same("\n".join(lines) + "\n")
    assert comparable(fast) == comparable(slow)


def test_the_canonical_form_takes_the_fast_path() -> None:
    text = 'devices:\n- {"endpoint": "urn:imei:1", "target": "1.0.0", "tags": {"a": "b"}}\n'
    rows = parse_devices(text)
    assert rows.fast and rows.endpoints == ["urn:imei:1"] and rows.tags == {0: {"a": "b"}}


def test_a_duplicate_key_on_one_line_is_reported_by_the_yaml_path() -> None:
    text = 'devices:\n- {"endpoint": "urn:imei:1", "endpoint": "urn:imei:2"}\n'
    rows = parse_devices(text)
    assert not rows.fast
    assert rows.problems == [(2, "devices[0].endpoint", "duplicate key")]


@pytest.mark.parametrize("value", ["1e5", "NaN", "-Infinity"])
def test_a_number_yaml_reads_as_a_string_takes_the_yaml_path(value: str) -> None:
    text = 'devices:\n- {"endpoint": "urn:imei:1", "target": ' + value + "}\n"
    rows = parse_devices(text)
    assert not rows.fast and rows.targets == [value]


def test_block_style_entries_load_the_same_devices_with_their_own_lines() -> None:
    block = "devices:\n  - endpoint: urn:imei:1\n    target: 1.0.0\n    tags: {a: b}\n"
    flow = 'devices:\n- {"endpoint": "urn:imei:1", "target": "1.0.0", "tags": {"a": "b"}}\n'
    slow, fast = parse_devices(block), parse_devices(flow)
    assert (slow.ids, slow.endpoints, slow.targets, slow.tags) == (
        fast.ids, fast.endpoints, fast.targets, fast.tags)
    assert slow.line_of(0, "target") == 3 and fast.line_of(0, "target") == 2


def test_a_device_without_an_id_gets_a_stable_one_from_its_endpoint() -> None:
    text = 'devices:\n- {"endpoint": "urn:imei:352656100000001"}\n'
    assert parse_devices(text).ids == parse_devices(text, fast=False).ids
    assert len(parse_devices(text).ids[0]) >= 4


def test_a_problem_past_the_first_validation_slice_is_reported_where_it_is() -> None:
    # Entries are validated a slice at a time (VALIDATE_SLICE): an error in a later
    # slice still names its own entry and line, and that entry keeps its other fields.
    count, bad = VALIDATE_SLICE * 2 + 10, VALIDATE_SLICE + 7
    devices = [{"endpoint": f"ep-{n}"} for n in range(count)]
    devices[bad]["tags"] = "not a mapping"  # type: ignore[assignment]
    text = "devices:\n" + "".join(f"- {json.dumps(d)}\n" for d in devices)
    for rows in same(text):
        assert [(line, path) for line, path, _ in rows.problems] == [
            (bad + 2, f"devices[{bad}].tags")]
        assert len(rows.endpoints) == count and rows.endpoints[bad] == f"ep-{bad}"
