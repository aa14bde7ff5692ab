"""The PSK credentials file: identity -> (key, endpoint), kept outside git.

A CSV file: a header naming the columns, then one device per line (docs/security.md):

    # comment lines and blank lines are skipped
    identity,key,endpoint
    urn:imei:352656100000001,000102030405060708090a0b0c0d0e0f,urn:imei:352656100000001

`key` is hex; the identity is text (`identity`, sent as UTF-8) or hex (`identity_hex`, for
any bytes); a file may have both columns and each line fills exactly one. Fields are
trimmed of surrounding blanks. `load_credentials` reads it whole and raises
`CredentialsError` naming file, line and field of every problem at once (bad hex,
duplicate identity or endpoint, a missing field), never a key. `Credentials` is immutable
and answers by identity and by endpoint with one dict lookup each: the DTLS handshake
(`reconciler.lwm2m`) asks for every ClientHello. Loaded by `reloader` and by
`fota validate --credentials`.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from reconciler.errors import FotaError

ENV_VAR = "FOTA_CREDENTIALS"  # the file's path when no --credentials flag is given
MAX_FILE_BYTES = 64 * 1024 * 1024  # ~500,000 credentials; a bigger file is a mistake
MAX_KEY_BYTES = 64  # RFC 4279 allows more; no LwM2M client uses more than 32
MAX_IDENTITY_BYTES = 128  # RFC 4279 allows 2^16 - 1; a handshake carries it in clear
MAX_REPORTED = 50  # problems in one error; a file of garbage names the first ones
_HEX = re.compile(r"[0-9a-fA-F]*")
_COLUMNS = ("identity", "identity_hex", "key", "endpoint")


@dataclass(frozen=True, slots=True)
class Credential:
    """One device's pre-shared key. `repr` (and so logs and tracebacks) never shows it."""

    identity: bytes
    key: bytes = field(repr=False)
    endpoint: str


@dataclass(frozen=True, slots=True)
class CredentialProblem:
    file: str
    line: int
    field: str
    message: str  # never contains a key

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class CredentialsError(FotaError):
    """A credentials file that cannot be used; carries every problem found."""

    def __init__(self, problems: list[CredentialProblem]) -> None:
        shown = [str(p) for p in problems[:MAX_REPORTED]]
        if len(problems) > MAX_REPORTED:
            shown.append(f"... and {len(problems) - MAX_REPORTED} more problem(s)")
        super().__init__("\n".join(shown))
        self.problems = problems


class Credentials:
    """An immutable set of credentials with an index by identity and by endpoint."""

    __slots__ = ("_by_endpoint", "_by_identity", "source")

    def __init__(self, credentials: Mapping[bytes, Credential] | None = None,
                 source: str = "") -> None:
        by_identity = dict(credentials or {})
        self._by_identity: Mapping[bytes, Credential] = MappingProxyType(by_identity)
        self._by_endpoint: Mapping[str, Credential] = MappingProxyType(
            {c.endpoint: c for c in by_identity.values()})
        self.source = source  # the file it came from, for messages

    def by_identity(self, identity: bytes) -> Credential | None:
        return self._by_identity.get(identity)

    def for_endpoint(self, endpoint: str) -> Credential | None:
        return self._by_endpoint.get(endpoint)

    def __len__(self) -> int:
        return len(self._by_identity)

    def __iter__(self) -> Iterator[Credential]:
        return iter(self._by_identity.values())

    def __repr__(self) -> str:
        return f"Credentials({len(self)} from {self.source or 'nowhere'})"


NO_CREDENTIALS = Credentials()


def describe_identity(identity: bytes) -> str:
    """An identity fit for a log line or a 4.03 reason: quoted text when it is printable
    UTF-8, else `hex:...`; cut at 64 characters (a peer chooses it)."""
    try:
        text = identity.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        return repr(text[:64] + ("..." if len(text) > 64 else ""))
    shown = identity[:32].hex()
    return f"hex:{shown}{'...' if len(identity) > 32 else ''}"


def credentials_path(given: Path | str | None,
                     environ: Mapping[str, str] | None = None) -> Path | None:
    """The flag's path, else `FOTA_CREDENTIALS`, else None (no credentials)."""
    if given is not None and str(given) != "":
        return Path(given)
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return Path(value) if value else None


def load_credentials(path: Path | str) -> Credentials:
    """Read and check the whole file; raise CredentialsError with every problem."""
    return parse_credentials(read_credentials_file(path), str(path))


def read_credentials_file(path: Path | str) -> bytes:
    """The file's bytes (bounded), or CredentialsError saying why not."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CredentialsError([CredentialProblem(name, 0, "file",
                                                  f"cannot read: {exc.strerror or exc}")]
                               ) from exc
    if len(data) > MAX_FILE_BYTES:
        raise CredentialsError([CredentialProblem(
            name, 0, "file", f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")])
    return data


def parse_credentials(data: bytes, name: str) -> Credentials:
    """A file's content -> Credentials, or CredentialsError with every problem."""
    return _Parser(name).parse(data)


class _Parser:
    """One file's lines -> Credentials, collecting every problem."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[CredentialProblem] = []
        self.found: dict[bytes, Credential] = {}
        self.identity_line: dict[bytes, int] = {}
        self.endpoint_line: dict[str, int] = {}

    def parse(self, data: bytes) -> Credentials:
        header: list[str] | None = None
        try:  # one decode for the whole file; line by line only to name a bad line
            lines: list[str | None] = list(data.decode("utf-8").split("\n"))
        except UnicodeDecodeError:
            lines = [self._decode(raw, n) for n, raw in enumerate(data.split(b"\n"), 1)]
        for number, line in enumerate(lines, 1):
            text = line.strip() if line is not None else ""
            if not text or text.startswith("#"):
                continue
            fields = _fields(text)
            if header is None:
                header = self._header(fields, number)
                if header is None:
                    break
            else:
                self._row(dict(zip(header, fields, strict=False)), len(fields),
                          len(header), number)
        if header is None and not self.problems:
            self._problem(1, "file", "no header line: write `identity,key,endpoint` first")
        if self.problems:
            self.problems.sort(key=lambda p: p.line)  # bad UTF-8 was found first
            raise CredentialsError(self.problems)
        return Credentials(self.found, self.name)

    def _decode(self, raw: bytes, number: int) -> str | None:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self._problem(number, "line", "not UTF-8 text (write a binary identity as "
                                          "identity_hex)")
            return None

    def _header(self, fields: list[str], number: int) -> list[str] | None:
        # Positions, never names: a file without a header has a key on this line.
        unknown = [str(i) for i, f in enumerate(fields, 1) if f not in _COLUMNS]
        repeated = sorted({f for f in fields if fields.count(f) > 1})
        missing = [c for c in ("key", "endpoint") if c not in fields]
        if "identity" not in fields and "identity_hex" not in fields:
            missing.insert(0, "identity or identity_hex")
        if unknown or repeated or missing:
            parts = [f"unknown column(s) at {', '.join(unknown)}"] if unknown else []
            parts += [f"repeated column(s) {', '.join(repeated)}"] if repeated else []
            parts += [f"missing column(s) {', '.join(missing)}"] if missing else []
            self._problem(number, "header", "; ".join(parts) + " (columns: identity or "
                          "identity_hex, key, endpoint)")
            return None
        return fields

    def _row(self, row: dict[str, str], given: int, wanted: int, number: int) -> None:
        if given != wanted:
            self._problem(number, "line", f"{given} field(s), the header has {wanted}")
            return
        identity = self._identity(row, number)
        key = self._hex(row.get("key", ""), number, "key", MAX_KEY_BYTES)
        endpoint = row.get("endpoint", "")
        if not endpoint:
            self._problem(number, "endpoint", "missing")
        if identity is None or key is None or not endpoint:
            return
        if identity in self.identity_line:
            self._problem(number, "identity", f"duplicate identity "
                          f"{describe_identity(identity)}, first at line "
                          f"{self.identity_line[identity]}")
        elif endpoint in self.endpoint_line:
            self._problem(number, "endpoint", f"duplicate endpoint {endpoint!r}, first at "
                          f"line {self.endpoint_line[endpoint]}")
        else:
            self.identity_line[identity], self.endpoint_line[endpoint] = number, number
            self.found[identity] = Credential(identity, key, endpoint)

    def _identity(self, row: dict[str, str], number: int) -> bytes | None:
        text, hexed = row.get("identity", ""), row.get("identity_hex", "")
        if text and hexed:
            self._problem(number, "identity", "give identity or identity_hex, not both")
            return None
        if hexed:
            return self._hex(hexed, number, "identity_hex", MAX_IDENTITY_BYTES)
        if not text:
            self._problem(number, "identity", "missing")
            return None
        identity = text.encode("utf-8")
        if len(identity) > MAX_IDENTITY_BYTES:
            self._problem(number, "identity", f"longer than {MAX_IDENTITY_BYTES} bytes")
            return None
        return identity

    def _hex(self, value: str, number: int, name: str, limit: int) -> bytes | None:
        # The message never quotes the value: for `key` it is the secret itself.
        if not value:
            self._problem(number, name, "missing")
        elif not _HEX.fullmatch(value) or len(value) % 2:
            self._problem(number, name, "not hex: write an even number of digits 0-9, a-f")
        elif len(value) // 2 > limit:
            self._problem(number, name, f"longer than {limit} bytes")
        else:
            return bytes.fromhex(value)
        return None

    def _problem(self, line: int, name: str, message: str) -> None:
        self.problems.append(CredentialProblem(self.name, line, name, message))


def _fields(text: str) -> list[str]:
    # The csv module only for a line that quotes: a plain split is 3x faster on 200,000.
    fields = next(csv.reader([text]), []) if '"' in text else text.split(",")
    return [f.strip() for f in fields]
