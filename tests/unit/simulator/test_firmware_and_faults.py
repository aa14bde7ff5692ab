"""Package verification, Package URI parsing and fault shares: pure functions."""

from __future__ import annotations

import hashlib

import pytest

from reconciler.model.lwm2m import UpdateResult
from reconciler.simulator.faults import Fault, assign_faults, parse_fault_share
from reconciler.simulator.firmware import PackageUri, make_package, parse_uri, verify


def test_an_image_in_the_catalog_is_accepted_as_its_version() -> None:
    image = b"\x7fELF firmware"
    verdict = verify(image, {hashlib.sha256(image).hexdigest(): "1.2.0"})
    assert (verdict.result, verdict.version) == (UpdateResult.INITIAL, "1.2.0")


def test_a_self_describing_package_is_accepted_when_its_digest_matches() -> None:
    verdict = verify(make_package("3.0.0", b"body"), {})
    assert (verdict.result, verdict.version) == (UpdateResult.INITIAL, "3.0.0")


@pytest.mark.parametrize("data", [
    make_package("3.0.0", b"body")[:-1],  # truncated body
    make_package("3.0.0", b"body").replace(b"body", b"bodx"),  # corrupted body
    b"random bytes nobody knows",
    b"",
])
def test_anything_else_fails_the_integrity_check(data: bytes) -> None:
    assert verify(data, {"ab" * 32: "1"}).result == UpdateResult.INTEGRITY_CHECK_FAILURE


def test_a_package_version_must_be_one_word() -> None:
    with pytest.raises(ValueError, match="one word"):
        make_package("1 0")


@pytest.mark.parametrize(("uri", "expected"), [
    ("coap://127.0.0.1:5700/fw/abc?t=1", PackageUri("127.0.0.1", 5700, ("fw", "abc"), ("t=1",))),
    ("coap://[::1]/fw", PackageUri("::1", 5683, ("fw",), ())),
    ("coaps://host/fw", UpdateResult.UNSUPPORTED_PROTOCOL),
    ("http://host/fw", UpdateResult.UNSUPPORTED_PROTOCOL),
    ("ftp://host/fw", UpdateResult.INVALID_URI),
    ("coap://host:99999/fw", UpdateResult.INVALID_URI),
    ("not a uri", UpdateResult.INVALID_URI),
])
def test_package_uris_parse_or_name_the_update_result(
        uri: str, expected: PackageUri | UpdateResult) -> None:
    assert parse_uri(uri) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("integrity:0.25", (Fault.INTEGRITY, 0.25)),
    ("slow:10%", (Fault.SLOW, 0.10)),
    ("silent", (Fault.SILENT, 1.0)),
])
def test_fault_shares_parse(text: str, expected: tuple[Fault, float]) -> None:
    fault, share = parse_fault_share(text)
    assert fault == expected[0] and share == pytest.approx(expected[1])


@pytest.mark.parametrize(("text", "message"), [
    ("meltdown:0.1", "unknown fault 'meltdown'"),
    ("slow:lots", "must be a number"),
    ("slow:1.5", "between 0 and 1"),
])
def test_bad_fault_shares_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault_share(text)


def test_a_fault_share_picks_that_many_distinct_devices_reproducibly() -> None:
    endpoints = [f"d{i}" for i in range(100)]
    shares = [(Fault.INTEGRITY, 0.1), (Fault.SLOW, 0.5)]
    chosen = assign_faults(endpoints, shares, seed=7)
    assert sum(Fault.INTEGRITY in f for f in chosen.values()) == 10
    assert sum(Fault.SLOW in f for f in chosen.values()) == 50
    assert chosen == assign_faults(endpoints, shares, seed=7)
    assert chosen != assign_faults(endpoints, shares, seed=8)


def test_make_specs_spreads_faults_over_common_specs() -> None:
    from reconciler.simulator import make_specs

    specs = make_specs([f"d{i}" for i in range(20)], [(Fault.REVERT, 0.25)], seed=1,
                       version="1.4", queue_mode=True)
    assert [s.endpoint for s in specs] == [f"d{i}" for i in range(20)]
    assert {(s.version, s.queue_mode) for s in specs} == {("1.4", True)}
    assert sum(Fault.REVERT in s.faults for s in specs) == 5
