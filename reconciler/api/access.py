"""Access control: the `X-API-Token` header and the loopback-only rule.

`TokenCheck` is a FastAPI dependency comparing the header against the configured tokens
in constant time. The loopback-only rule for an API without a token is
`reconciler.loopback.check_bind`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from reconciler.api import session
from reconciler.api.errors import ApiError

TOKEN_HEADER = APIKeyHeader(name="X-API-Token", auto_error=False,
                            description="An API token from the server's configuration")


class TokenCheck:
    """401 unless the request carries one of `tokens` (no tokens configured: open), or
    the dashboard's session cookie issued for one (a browser's page loads and EventSource
    cannot send the header)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [t.encode() for t in tokens if t]

    # async so FastAPI runs it inline; a sync dependency would hop to the thread pool
    # on every request, which costs more than the whole rest of a small GET.
    async def __call__(self, request: Request,
                       token: Annotated[str | None, Security(TOKEN_HEADER)] = None) -> None:
        if not self._tokens:
            return
        if token is None and self.has_session(request):
            return
        if not session.token_matches(token or "", self._tokens):
            raise ApiError(401, "invalid X-API-Token header"
                           if token else "missing X-API-Token header")

    def has_session(self, request: Request) -> bool:
        return not self._tokens or session.valid(
            request.cookies.get(session.COOKIE), self._tokens, time.time())

    def matches(self, token: str) -> bool:
        return session.token_matches(token, self._tokens)

    @property
    def open(self) -> bool:
        return not self._tokens
