"""The manifest key `security` (collection and device) and `fota validate --credentials`:
every endpoint that requires PSK has a credential, reported at the device's line, and
no key is ever printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders.manifests import COLLECTION, Tree

from reconciler.cli import main
from reconciler.model.desired import SecurityMode
from reconciler.sources import load_tree, validate_tree
from reconciler.sources.parsing import parse_collection

KEY = "5ec12e75ec12e75ec12e75ec12e75ec1"
DEVICES = """\
devices:
- {"deviceId": "2000aaaa", "endpoint": "urn:imei:1"}
- {"deviceId": "2000aaab", "endpoint": "urn:imei:2", "security": "none"}
- {"deviceId": "2000aaac", "endpoint": "urn:imei:3", "security": "psk"}
"""


def secured(tree: Tree, collection_security: str | None) -> Tree:
    extra = f"security: {collection_security}\n" if collection_security else ""
    tree.write("manifests/fleet/collection.yaml", COLLECTION + extra)
    tree.write("manifests/fleet/devices/a.yaml", DEVICES)
    return tree


def test_a_device_overrides_its_collection_and_absent_is_none(tree: Tree) -> None:
    desired = load_tree(secured(tree, "psk").root)
    assert desired.collections["1000aaaa"].security is SecurityMode.PSK
    devices = desired.devices
    assert [devices[d].security for d in ("2000aaaa", "2000aaab", "2000aaac")] == [
        None, SecurityMode.NONE, SecurityMode.PSK]
    assert [desired.security_of(devices[d]) for d in ("2000aaaa", "2000aaab")] == [
        SecurityMode.PSK, SecurityMode.NONE]
    plain = load_tree(secured(tree, None).root)
    assert plain.collections["1000aaaa"].security is None
    assert plain.security_of(plain.devices["2000aaaa"]) is None


def test_a_bad_value_is_reported_where_written(tree: Tree) -> None:
    assert parse_collection(COLLECTION + "security: tls\n").problems == [
        (6, "security", "must be one of 'psk' or 'none', got 'tls'")]
    tree.write("manifests/fleet/devices/a.yaml",
               'devices:\n- {"endpoint": "e1", "security": true}\n')
    assert [str(p) for p in validate_tree(tree.root)] == [
        "manifests/fleet/devices/a.yaml:2: devices[0].security: "
        "must be one of 'psk' or 'none', got True"]


def validate(tree: Tree, creds: str, capsys: pytest.CaptureFixture[str],
             *more: str) -> tuple[int, str]:
    path = tree.root.parent / "creds.csv"
    path.write_text(creds)
    code = main(["validate", str(tree.root), "--credentials", str(path), *more])
    out, err = capsys.readouterr()
    assert KEY not in out + err
    return code, out.replace(str(path), "CREDS")


def test_validate_names_each_psk_endpoint_without_a_credential(
        tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    secured(tree, "psk")
    code, out = validate(tree, f"identity,key,endpoint\nd2,{KEY},urn:imei:2\n", capsys)
    assert code == 1
    assert out.splitlines() == [
        "manifests/fleet/devices/a.yaml:2: devices[0].endpoint: endpoint 'urn:imei:1' "
        "requires PSK (its collection's `security: psk` at "
        "manifests/fleet/collection.yaml:6) and has no credential in CREDS",
        "manifests/fleet/devices/a.yaml:4: devices[2].security: endpoint 'urn:imei:3' "
        "requires PSK (its own `security: psk`) and has no credential in CREDS"]
    code, out = validate(tree, f"identity,key,endpoint\nd1,{KEY},urn:imei:1\n"
                               f"d3,{KEY},urn:imei:3\n", capsys)
    assert (code, out) == (0, "")


def test_validate_applies_the_security_default_and_reports_a_bad_file(
        tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    secured(tree, None)
    creds = f"identity,key,endpoint\nd3,{KEY},urn:imei:3\n"
    assert validate(tree, creds, capsys) == (0, "")
    code, out = validate(tree, creds, capsys, "--security-default", "psk")
    assert code == 1 and out.splitlines() == [
        "manifests/fleet/devices/a.yaml:2: devices[0].endpoint: endpoint 'urn:imei:1' "
        "requires PSK (the server's default, --security-default psk) and has no "
        "credential in CREDS"]
    code, out = validate(tree, f"identity,key,endpoint\nd3,{KEY}x,urn:imei:3\n", capsys)
    assert code == 1 and out.splitlines() == [
        "CREDS:2: key: not hex: write an even number of digits 0-9, a-f"]


def test_without_credentials_validate_ignores_security(
        tree: Tree, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.delenv("FOTA_CREDENTIALS", raising=False)
    assert main(["validate", str(secured(tree, "psk").root)]) == 0
    monkeypatch.setenv("FOTA_CREDENTIALS", str(tmp_path / "absent.csv"))
    assert main(["validate", str(tree.root)]) == 1
    assert "absent.csv:0: file: cannot read" in capsys.readouterr().out
