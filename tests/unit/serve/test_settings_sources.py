"""`fota serve`'s settings: a flag given wins, else its FOTA_* variable, else the default;
and docs/operations.md carries the table generated from the settings model."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import build_parser
from reconciler.serve import cmd
from reconciler.serve.settings import ServeSettings, setting_names
from reconciler.serve.settings_doc import BEGIN, END, settings_table

DOC = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def _settings(argv: list[str]) -> ServeSettings:
    return cmd.settings_from(build_parser(["serve", *argv]).parse_args(["serve", *argv]))


def test_the_environment_fills_in_every_flag_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"FOTA_REPO": "/srv/fleet", "FOTA_STATE": "/var/lib/fota/state.db",
           "FOTA_COAP_HOST": "0.0.0.0", "FOTA_COAP_PORT": "15683",
           "FOTA_HTTP_PORT": "18080", "FOTA_BRANCH": "prod", "FOTA_LOG_LEVEL": "debug",
           "FOTA_TOKENS": "t1,t2", "FOTA_PUBLIC_URI": "coap://fota.example:5683"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = _settings([])
    assert (s.repo, s.state, s.coap_host, s.coap_port, s.http_host, s.http_port) == (
        "/srv/fleet", Path("/var/lib/fota/state.db"), "0.0.0.0", 15683, "127.0.0.1", 18080)
    assert (s.branch, s.log_level, s.tokens, s.public_uri) == (
        "prod", "DEBUG", ("t1", "t2"), "coap://fota.example:5683")


def test_a_flag_given_wins_over_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOTA_REPO", "/srv/fleet")
    monkeypatch.setenv("FOTA_COAP_PORT", "15683")
    s = _settings(["--repo", "/other", "--coap", "127.0.0.2:9999", "--token", "x"])
    assert (s.repo, s.coap_host, s.coap_port, s.tokens) == ("/other", "127.0.0.2", 9999,
                                                            ("x",))


def test_without_flags_or_variables_the_defaults_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, _ in setting_names():
        monkeypatch.delenv("FOTA_" + name.upper(), raising=False)
    s = _settings([])
    assert (s.repo, s.state, s.coap_port, s.http_port, s.branch) == (
        ".", Path(".fota/state.db"), 5683, 8080, None)


def test_operations_doc_carries_the_generated_settings_table() -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == settings_table(), (
        "regenerate with: python -m reconciler.serve.settings_doc")


def test_the_table_has_a_row_and_a_meaning_for_every_setting() -> None:
    rows = [line for line in settings_table().splitlines() if line.startswith("| ")][2:]
    names = [row.split(" | ")[0].removeprefix("| ") for row in rows]
    assert names == [name for name, _ in setting_names()]
    assert all(row.split(" | ")[4].strip(" |") for row in rows), "a setting has no meaning"
