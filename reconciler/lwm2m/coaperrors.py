"""The border between aiocoap's errors and ours, in both directions.

Outgoing: `error_response` renders a dotted code and a diagnostic as a CoAP response (used
by `rd_resources.py`). Incoming: `translate` turns aiocoap exceptions raised while talking to a
device into the `reconciler.errors` tree, and `raise_for_code` turns an error answer into
`DeviceRequestFailed`; `client.py` calls both so no aiocoap exception leaves lwm2m/.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiocoap import Message
from aiocoap import error as coap_error
from aiocoap.numbers.codes import Code

from reconciler.errors import DeviceRequestFailed, DeviceTimeout, FotaError, TemporaryError


def code_of(dotted: str) -> Code:
    """"4.04" -> Code.NOT_FOUND."""
    klass, _, detail = dotted.partition(".")
    return Code(int(klass) * 32 + int(detail))


def error_response(dotted: str, message: str) -> Message:
    """A response with the code and a UTF-8 diagnostic payload (RFC 7252 §5.5.2)."""
    return Message(code=code_of(dotted), payload=message.encode("utf-8")[:512])


def raise_for_code(response: Message, path: str, endpoint: str) -> None:
    if response.code.is_successful():
        return
    diagnostic = response.payload.decode("utf-8", "replace")[:200]
    message = f"{endpoint}: {diagnostic}" if diagnostic else endpoint
    raise DeviceRequestFailed(path, response.code.dotted, message)


def translate(exc: BaseException, path: str) -> FotaError:
    """Map an exception met while waiting for a device's answer into our error tree."""
    if isinstance(exc, asyncio.TimeoutError | coap_error.TimeoutError):
        return DeviceTimeout(f"{path}: no answer from the device")
    if isinstance(exc, coap_error.NetworkError | OSError):
        return TemporaryError(f"{path}: network error: {exc}")
    if isinstance(exc, coap_error.Error):
        return TemporaryError(f"{path}: CoAP error: {type(exc).__name__}: {exc}")
    return TemporaryError(f"{path}: unexpected {type(exc).__name__}: {exc}")


def abandon(request: Any) -> None:
    """Stop an aiocoap request: no more retransmissions or notifications."""
    observation = getattr(request, "observation", None)
    if observation is not None and not observation.cancelled:
        observation.cancel()
    # A blockwise request's runner task sets its response: ended first (even if already
    # woken with the answer), it cannot set the future cancelled below (InvalidStateError).
    runner = getattr(request, "_runner", None)
    if isinstance(runner, asyncio.Task):
        runner.cancel()
    if not request.response.done():
        request.response.cancel()
