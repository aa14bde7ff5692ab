"""The credentials file: what loads, and every refusal named by file, line and field
without ever showing a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.security.credentials import (
    Credential,
    CredentialsError,
    credentials_path,
    describe_identity,
    load_credentials,
)

KEY = "000102030405060708090a0b0c0d0e0f"
SECRET = "5ec12e75ec12e75ec12e75ec12e75ec1"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "creds.csv"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(CredentialsError) as caught:
        load_credentials(path)
    assert SECRET not in str(caught.value) and SECRET.upper() not in str(caught.value)
    return [str(p) for p in caught.value.problems]


def test_a_file_loads_and_answers_by_identity_and_by_endpoint(tmp_path: Path) -> None:
    path = write(tmp_path, "# devices of the trackers collection\n"
                           "identity,identity_hex,key,endpoint\n"
                           f"dev-1,,{KEY},urn:imei:1\n"
                           "\n"
                           f" ,00ff10 , {SECRET.upper()} ,urn:imei:2\r\n"
                           f'"a, b",,{KEY},urn:imei:3\n')
    creds = load_credentials(path)
    assert len(creds) == 3
    assert creds.by_identity(b"dev-1") == Credential(b"dev-1", bytes.fromhex(KEY), "urn:imei:1")
    assert creds.by_identity(b"\x00\xff\x10") == creds.for_endpoint("urn:imei:2")
    assert creds.for_endpoint("urn:imei:2") is not None
    assert creds.for_endpoint("urn:imei:2").key == bytes.fromhex(SECRET)  # type: ignore[union-attr]
    assert creds.by_identity(b"a, b") is creds.for_endpoint("urn:imei:3")
    assert creds.by_identity(b"dev-2") is None and creds.for_endpoint("urn:imei:9") is None
    assert {c.endpoint for c in creds} == {"urn:imei:1", "urn:imei:2", "urn:imei:3"}


def test_the_repr_of_a_credential_and_of_the_set_never_shows_a_key(tmp_path: Path) -> None:
    creds = load_credentials(write(tmp_path, f"identity,key,endpoint\nd,{SECRET},e\n"))
    shown = repr(creds.by_identity(b"d")) + str(creds.by_identity(b"d")) + repr(creds)
    assert "d" in shown and "e" in shown
    assert SECRET not in shown and repr(bytes.fromhex(SECRET)) not in shown


def test_every_problem_is_named_by_line_and_field_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "identity,identity_hex,key,endpoint\n"
                           f"d1,,{SECRET},e1\n"
                           f"d2,,{SECRET}z,e2\n"          # bad hex
                           f"d3,,{SECRET[:-1]},e3\n"      # odd length
                           f"d1,,{SECRET},e4\n"           # duplicate identity
                           f"d5,,{SECRET},e1\n"           # duplicate endpoint
                           f",,{SECRET},e6\n"             # no identity
                           "d7,,,e7\n"                    # no key
                           f"d8,,{SECRET},\n"             # no endpoint
                           f"d9,0a,{SECRET},e9\n"         # both identities
                           f",0g,{SECRET},e10\n"          # bad identity hex
                           f"d11,{SECRET},e11\n")         # a field short
    name = str(path)
    assert problems(path) == [
        f"{name}:3: key: not hex: write an even number of digits 0-9, a-f",
        f"{name}:4: key: not hex: write an even number of digits 0-9, a-f",
        f"{name}:5: identity: duplicate identity 'd1', first at line 2",
        f"{name}:6: endpoint: duplicate endpoint 'e1', first at line 2",
        f"{name}:7: identity: missing",
        f"{name}:8: key: missing",
        f"{name}:9: endpoint: missing",
        f"{name}:10: identity: give identity or identity_hex, not both",
        f"{name}:11: identity_hex: not hex: write an even number of digits 0-9, a-f",
        f"{name}:12: line: 3 field(s), the header has 4",
    ]


def test_a_bad_header_an_empty_file_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "# nothing\n")) == [
        f"{tmp_path / 'creds.csv'}:1: file: no header line: write `identity,key,endpoint` first"]
    header = problems(write(tmp_path, f"d1,{SECRET},e1\n"))
    assert len(header) == 1 and ":1: header: unknown column(s) at 1, 2, 3;" in header[0]
    assert "missing column(s) identity or identity_hex, key, endpoint" in header[0]
    missing = problems(tmp_path / "absent.csv")
    assert missing == [f"{tmp_path / 'absent.csv'}:0: file: cannot read: "
                       "No such file or directory"]


def test_oversized_keys_and_identities_and_non_utf8_lines_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "creds.csv"
    path.write_bytes(b"identity,key,endpoint\n"
                     + b"x" * 129 + b"," + SECRET.encode() + b",e1\n"
                     + b"d2," + b"ab" * 65 + b",e2\n"
                     + b"\xff\xfe," + SECRET.encode() + b",e3\n")
    assert [p.split(": ", 1)[1] for p in problems(path)] == [
        "identity: longer than 128 bytes", "key: longer than 64 bytes",
        "line: not UTF-8 text (write a binary identity as identity_hex)"]


def test_identities_are_described_safely_for_logs() -> None:
    assert describe_identity(b"dev-1") == "'dev-1'"
    assert describe_identity(b"\x00\x01") == "hex:0001"
    assert describe_identity(b"a\nb") == "hex:610a62"  # no line breaks into a log
    assert describe_identity(b"x" * 100) == repr("x" * 64 + "...")
    assert describe_identity(b"\xff" * 40) == "hex:" + "ff" * 32 + "..."


def test_the_path_comes_from_the_flag_else_the_environment(tmp_path: Path) -> None:
    env = {"FOTA_CREDENTIALS": str(tmp_path / "env.csv")}
    assert credentials_path(tmp_path / "flag.csv", env) == tmp_path / "flag.csv"
    assert credentials_path(None, env) == tmp_path / "env.csv"
    assert credentials_path(None, {}) is None
