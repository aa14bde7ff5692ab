"""The HTTP side of `fota status`: JSON GETs and the /events stream of a running
`fota serve`, with the standard library's urllib (blocking; `watch.follow` reads the
stream in a thread). Called by `watch.cmd` and `watch.follow`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

STREAM_TIMEOUT = 45.0  # three keepalive intervals of silence: the stream is dead


class ApiError(Exception):
    """The API could not be reached or answered an error; the message says which."""


@dataclass(frozen=True, slots=True)
class Message:
    """One SSE message: its id (the feed's cursor) and its JSON data."""

    id: int | None
    data: dict[str, Any]


class Api:
    def __init__(self, root: str, token: str | None, timeout: float = 10.0) -> None:
        self.root = root.rstrip("/")
        self._headers = {"X-API-Token": token} if token else {}
        self._timeout = timeout

    def get(self, path: str, **query: object) -> dict[str, Any]:
        with self._open(path, query, self._timeout) as response:
            try:
                data = json.loads(response.read())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ApiError(f"GET {path}: {self.root} did not answer JSON") from exc
        if not isinstance(data, dict):
            raise ApiError(f"GET {path}: {self.root} did not answer a JSON object")
        return data

    def events(self, last_id: int | None, **query: object) -> Iterator[Message | None]:
        """The /events stream: a Message per event, None per comment or retry line (a
        sign of life). Ends when the server closes it; raises ApiError when it breaks."""
        headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
        with self._open("/events", query, STREAM_TIMEOUT, headers) as response:
            try:
                yield from _parse(iter(response.readline, b""))
            except OSError as exc:  # a reset, or silence past STREAM_TIMEOUT
                raise ApiError(f"the event stream of {self.root} broke: {exc}") from exc

    def _open(self, path: str, query: dict[str, object], timeout: float,
              headers: dict[str, str] | None = None) -> Any:
        wanted = {k: v for k, v in query.items() if v is not None}
        url = self.root + path + (f"?{urlencode(wanted)}" if wanted else "")
        request = urllib.request.Request(url, headers={**self._headers, **(headers or {})})
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise ApiError(_http_error(path, exc)) from exc
        except OSError as exc:  # URLError, refused, timed out
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach {self.root}: {reason}") from exc


def _http_error(path: str, exc: urllib.error.HTTPError) -> str:
    try:
        message = json.loads(exc.read()).get("message", "")
    except (ValueError, AttributeError, OSError):
        message = ""
    hint = " (set FOTA_API_TOKEN to an accepted token)" if exc.code == 401 else ""
    return f"GET {path} answered {exc.code}{': ' + message if message else ''}{hint}"


def _parse(lines: Iterator[bytes]) -> Iterator[Message | None]:
    """SSE framing: `id:` and `data:` lines up to a blank line make a message."""
    event_id: int | None = None
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith(":") or line.startswith("retry:"):
            yield None
        elif line.startswith("id:"):
            event_id = int(line[3:].strip()) if line[3:].strip().isdigit() else None
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            yield Message(event_id, json.loads("\n".join(data)))
            data = []
