"""The PSK file of `fota simulate --psk-file`: which identity and key each device uses.

The same lines as the server's credentials file: `IDENTITY KEY_HEX ENDPOINT` (spaces or
commas between the fields, `#` comments and blank lines ignored). Errors name the file
and line and never show a key. Read by `cmd`.
"""

from __future__ import annotations

import re
from pathlib import Path

Psk = tuple[bytes, bytes]  # (identity, key)


class PskFileError(ValueError):
    pass


def read_psk_file(path: Path) -> dict[str, Psk]:
    """endpoint -> (identity, key) for every line of `path`."""
    keys: dict[str, Psk] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in re.split(r"[\s,]+", line) if f]
        if len(fields) != 3:
            raise PskFileError(f"{path}:{number}: expected IDENTITY KEY_HEX ENDPOINT "
                               f"(3 fields), got {len(fields)}")
        identity, key_hex, endpoint = fields
        try:
            key = bytes.fromhex(key_hex)
        except ValueError:
            raise PskFileError(f"{path}:{number}: the key is not hex") from None
        if not key:
            raise PskFileError(f"{path}:{number}: the key is empty")
        keys[endpoint] = (identity.encode(), key)
    return keys
