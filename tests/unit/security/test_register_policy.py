"""The security policy (manifest over server default) and `check_register`'s table."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from reconciler.model.desired import Collection, DesiredState, Device, SecurityMode
from reconciler.security.credentials import Credential, Credentials
from reconciler.security.policy import SecurityPolicy, SecurityView, check_register

PSK, NONE = SecurityMode.PSK, SecurityMode.NONE


def desired() -> DesiredState:
    collections = {"c1": Collection("c1", security=PSK), "c2": Collection("c2")}
    devices = {
        "d1": Device("d1", "c1", "ep-psk"),  # its collection's psk
        "d2": Device("d2", "c1", "ep-none", security=NONE),  # overrides the collection
        "d3": Device("d3", "c2", "ep-default"),  # neither says: the server's default
        "d4": Device("d4", "c2", "ep-own-psk", security=PSK),
    }
    return DesiredState("r1", MappingProxyType(collections), MappingProxyType({}),
                        MappingProxyType(devices))


CREDS = Credentials({b"id-psk": Credential(b"id-psk", b"k1", "ep-psk"),
                     b"id-none": Credential(b"id-none", b"k2", "ep-none")})


@pytest.mark.parametrize(("default", "endpoint", "mode"), [
    (NONE, "ep-psk", PSK), (NONE, "ep-none", NONE), (NONE, "ep-default", NONE),
    (NONE, "ep-own-psk", PSK), (PSK, "ep-default", PSK), (PSK, "ep-none", NONE),
    (PSK, "undeclared", PSK), (NONE, "undeclared", NONE),
])
def test_the_device_overrides_its_collection_which_overrides_the_default(
        default: SecurityMode, endpoint: str, mode: SecurityMode) -> None:
    assert SecurityPolicy(default, desired()).mode_of(endpoint) is mode


@pytest.mark.parametrize(("endpoint", "identity", "reason"), [
    ("ep-psk", b"id-psk", None),
    ("ep-psk", None, "endpoint 'ep-psk' requires PSK, came over plain CoAP"),
    ("ep-none", None, None),
    ("ep-none", b"id-none", None),  # need not, may: DTLS with its own identity
    ("ep-none", b"id-psk", "identity 'id-psk' is bound to endpoint 'ep-psk', not 'ep-none'"),
    ("ep-psk", b"id-none", "identity 'id-none' is bound to endpoint 'ep-none', not 'ep-psk'"),
    ("ep-default", b"stranger", "no credential for identity 'stranger'"),
    ("ep-psk", b"\x00\x01", "no credential for identity hex:0001"),
])
def test_check_register_allows_only_an_identity_bound_to_the_endpoint(
        endpoint: str, identity: bytes | None, reason: str | None) -> None:
    assert check_register(endpoint, identity, CREDS, SecurityPolicy(NONE, desired())) == reason


def test_the_view_reads_the_current_credentials_and_policy_on_every_call() -> None:
    current = {"creds": Credentials(), "policy": SecurityPolicy(NONE, desired())}
    view = SecurityView(lambda: current["creds"],  # type: ignore[arg-type,return-value]
                        lambda: current["policy"])  # type: ignore[arg-type,return-value]
    assert view.check_register("ep-psk", b"id-psk") == "no credential for identity 'id-psk'"
    current["creds"] = CREDS
    assert view.check_register("ep-psk", b"id-psk") is None
    assert view.check_register("ep-default", None) is None
    current["policy"] = SecurityPolicy(PSK, desired())
    assert view.check_register("ep-default", None) is not None
    assert view.credentials is CREDS and view.policy.default is PSK
    assert SecurityView().check_register("ep-psk", None) is None  # nothing configured
