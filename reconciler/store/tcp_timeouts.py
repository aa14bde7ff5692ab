"""libpq's TCP timeouts for PostgreSQL connections (`TcpTimeouts`) and the URL that carries
them (`with_tcp_timeouts`), without importing psycopg: `serve.settings` needs them on every
start, and a SQLite server's start should not pay psycopg's import (0.13-0.25 s measured,
before the CoAP port opens). Called by `serve.settings` and `store.pg.connection`/`reader`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode


@dataclass(frozen=True, slots=True)
class TcpTimeouts:
    """libpq's keepalive and TCP user timeout parameters (TCP only: a unix socket has
    none). The defaults notice a silent peer within ~60 s: an idle connection after 30 s
    idle and 3 unanswered probes 10 s apart, one with unacknowledged data after 30 s."""

    keepalives_idle: int = 30  # seconds idle before the first probe
    keepalives_interval: int = 10  # seconds between unanswered probes
    keepalives_count: int = 3  # unanswered probes before the connection is dropped
    tcp_user_timeout: int = 30_000  # milliseconds sent data may go unacknowledged

    def params(self) -> dict[str, str]:
        return {"keepalives": "1", "keepalives_idle": str(self.keepalives_idle),
                "keepalives_interval": str(self.keepalives_interval),
                "keepalives_count": str(self.keepalives_count),
                "tcp_user_timeout": str(self.tcp_user_timeout)}


def with_tcp_timeouts(url: str, timeouts: TcpTimeouts = TcpTimeouts()) -> str:
    """`url` (a `postgresql://` URL) with each of the timeouts' parameters it does not
    name itself: `?keepalives=0` or `?tcp_user_timeout=...` in the URL stays as given."""
    import psycopg  # here, not at the top: a SQLite server's start never loads psycopg

    try:
        named = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return url  # malformed: connecting says why
    missing = {k: v for k, v in timeouts.params().items() if k not in named}
    if not missing:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(missing)
