"""`HeadAsGet`: HEAD answered like GET, without the body, on every route.

HEAD is not a write: RFC 9110 says a server answering GET answers HEAD with the same status
and headers (Content-Length included) and no content. FastAPI routes declared with GET do
not match HEAD, so this ASGI middleware, installed by `app.create_app`, runs the request as
a GET and drops the body it sends.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # A copy: the server keeps the original scope and must still see HEAD (uvicorn
        # then checks that no body bytes follow the headers).
        # The mark tells an endless stream (/events) to answer with its headers alone.
        await self.app({**scope, "method": "GET", "fota.head": True}, receive, headers_only)
