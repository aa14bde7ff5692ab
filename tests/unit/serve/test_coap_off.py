"""`--coap off` (issue 12 item 1): the settings refuse a server without any listener or
with a plain firmware URI no listener serves, in one line; with only CoAPs, the declared
endpoints without a credential (which cannot register) are logged once per change."""

from __future__ import annotations

import logging

import pytest
from builders.desired import collection, desired_state, device
from pydantic import ValidationError

from reconciler.security.credentials import Credential, Credentials
from reconciler.security.policy import SecurityView
from reconciler.serve.security import Security
from reconciler.serve.settings import ServeSettings, describe


def _refusal(environ: dict[str, str]) -> str:
    with pytest.raises(ValidationError) as caught:
        ServeSettings.load({}, environ=environ)
    return describe(caught.value, environ)


def test_coap_off_needs_coaps_and_takes_no_plain_firmware_uri() -> None:
    assert _refusal({"FOTA_COAP": "off"}) == (
        "--coap off (FOTA_COAP=off) needs --coaps HOST:PORT (FOTA_COAPS): devices would "
        "have no listener at all")
    assert _refusal({"FOTA_COAP": "off", "FOTA_COAPS": "127.0.0.1:5684",
                     "FOTA_PUBLIC_URI": "coap://fota.example:5683"}).startswith(
        "--public-uri (FOTA_PUBLIC_URI) names the plain CoAP firmware URI")
    settings = ServeSettings.load({}, environ={"FOTA_COAP": "off",
                                              "FOTA_COAPS": "127.0.0.1:5684"})
    assert settings.plain_port is None and settings.coaps_address() == ("127.0.0.1", 5684)
    assert ServeSettings.load({}, environ={}).plain_port == 5683


def test_endpoints_without_a_credential_are_logged_once_per_change(
        caplog: pytest.LogCaptureFixture) -> None:
    keyed = Credentials({b"id-1": Credential(b"id-1", b"k" * 16, "ep-1")})
    security = Security(SecurityView(lambda: keyed), None, coaps_only=True)
    desired = desired_state(collection(), devices=[device("d1"), device("d2"),
                                                   device("d3")])
    with caplog.at_level(logging.WARNING, "reconciler.serve"):
        assert security.warn_unreachable(desired) == ["ep-2", "ep-3"]
        assert security.warn_unreachable(desired) == ["ep-2", "ep-3"]  # not logged again
    assert [r.getMessage() for r in caplog.records] == [
        "--coap off: 2 declared endpoints have no PSK credential and cannot register "
        "(no plain CoAP listener): ep-2, ep-3"]
    beside = Security(SecurityView(lambda: keyed), None, coaps_only=False)
    assert beside.warn_unreachable(desired) == []  # plain CoAP serves them
