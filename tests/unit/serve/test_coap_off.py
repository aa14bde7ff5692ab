"""`--coap off` (issue 12 item 1): the settings refuse a server without any listener or
with a plain firmware URI no listener serves, in one line; with only CoAPs, the declared
endpoints without a credential (which cannot register) are logged once per change."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from builders.desired import collection, desired_state, device
from pydantic import ValidationError

from reconciler.security.credentials import Credential, Credentials
from reconciler.security.policy import SecurityView
from reconciler.serve.security import Security, start_security
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


async def test_endpoints_without_a_credential_are_logged_once_per_change(
        caplog: pytest.LogCaptureFixture) -> None:
    keyed = Credentials({b"id-1": Credential(b"id-1", b"k" * 16, "ep-1")})
    security = Security(SecurityView(lambda: keyed), None, coaps_only=True)
    desired = desired_state(collection(), devices=[device("d1"), device("d2"),
                                                   device("d3")])
    with caplog.at_level(logging.WARNING, "reconciler.serve"):
        assert await security.warn_unreachable(desired) == ["ep-2", "ep-3"]
        assert await security.warn_unreachable(desired) == ["ep-2", "ep-3"]  # not logged again
    assert [r.getMessage() for r in caplog.records] == [
        "--coap off: 2 declared endpoints have no PSK credential and cannot register "
        "(no plain CoAP listener): ep-2, ep-3"]
    beside = Security(SecurityView(lambda: keyed), None, coaps_only=False)
    assert await beside.warn_unreachable(desired) == []  # plain CoAP serves them


class _Told(logging.Handler):
    """The warnings, with the thread that logged each."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.said: asyncio.Queue[tuple[str, int]] = asyncio.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.said.put_nowait((record.getMessage(), threading.get_ident()))


async def test_the_count_runs_in_a_worker_thread_at_start_and_after_a_reload(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "5ec12e75ec12e75ec12e75ec12e75ec1"
    path = tmp_path / "creds.csv"
    path.write_text(f"identity,key,endpoint\nid-1,{key},ep-1\n")
    settings = ServeSettings.load({}, environ={"FOTA_COAP": "off",
                                              "FOTA_COAPS": "127.0.0.1:5684",
                                              "FOTA_CREDENTIALS": str(path)})
    desired = desired_state(collection(), devices=[device("d1"), device("d2"),
                                                   device("d3")])
    security = start_security(settings, SimpleNamespace(current=desired), lambda _: None)
    lookups: list[int] = []
    real = Credentials.for_endpoint

    def for_endpoint(self: Credentials, endpoint: str) -> Credential | None:
        lookups.append(threading.get_ident())
        return real(self, endpoint)

    monkeypatch.setattr(Credentials, "for_endpoint", for_endpoint)
    told = _Told()
    logging.getLogger("reconciler.serve").addHandler(told)
    stop = asyncio.Event()
    running = asyncio.create_task(security.run(stop))
    try:
        assert await security.warn_unreachable(desired) == ["ep-2", "ep-3"]
        said, thread = await told.said.get()
        assert said.startswith("--coap off: 2 declared endpoints") and said.endswith(
            ": ep-2, ep-3") and thread == threading.get_ident()  # logged on the loop
        assert len(lookups) == 3 and threading.get_ident() not in lookups
        assert security.reloader is not None
        await security.reloader.watching.wait()
        path.write_text(f"identity,key,endpoint\nid-1,{key},ep-1\nid-2,{key},ep-2\n")
        await security.reloader.reload("test")  # or the file watcher did: one swap
        said, thread = await asyncio.wait_for(told.said.get(), 10)
        assert said.endswith("1 declared endpoints have no PSK credential and cannot "
                             "register (no plain CoAP listener): ep-3")
        assert thread == threading.get_ident()
        assert len(lookups) == 6 and threading.get_ident() not in lookups
    finally:
        logging.getLogger("reconciler.serve").removeHandler(told)
        stop.set()
        await running
