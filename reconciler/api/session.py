"""The dashboard's browser session: an HttpOnly cookie standing for an API token.

A browser cannot put `X-API-Token` on a page load or an EventSource, so /ui/login takes
the token once (a POST form: never in a URL, a log line or the history) and answers with
a cookie holding `<issued>.<HMAC-SHA256(token, issued)>`: the token itself never leaves
the server again, the cookie dies after `LIFETIME` or when the token is removed from the
configuration, and SameSite=Strict keeps other sites from sending it. `TokenCheck`
(access.py) accepts it in place of the header; the dashboard (ui/) issues it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

COOKIE = "fota_session"
LIFETIME = 12 * 3600  # seconds: a working day's watch, then the token is asked again


def _mac(token: bytes, issued: int) -> str:
    return hmac.new(token, f"fota-ui-session:{issued}".encode(), hashlib.sha256).hexdigest()


def issue(token: str, now: float) -> str:
    issued = int(now)
    return f"{issued}.{_mac(token.encode(), issued)}"


def valid(value: str | None, tokens: Sequence[bytes], now: float) -> bool:
    """True when `value` was issued for one of `tokens` less than `LIFETIME` ago."""
    if not value or "." not in value:
        return False
    issued_text, mac = value.split(".", 1)
    if not issued_text.isdigit() or not 0 <= now - int(issued_text) < LIFETIME:
        return False
    matched = False
    for token in tokens:  # every token, so the time taken says nothing about which
        matched |= hmac.compare_digest(mac.encode(), _mac(token, int(issued_text)).encode())
    return matched


def token_matches(given: str, tokens: Sequence[bytes]) -> bool:
    """Constant-time comparison of `given` against every configured token."""
    matched = False
    for known in tokens:
        matched |= hmac.compare_digest(given.encode(), known)
    return matched
