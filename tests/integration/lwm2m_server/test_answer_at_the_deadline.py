"""A device's answer and our timeout due in the same pass of a stalled event loop (issue
13: a node cut off from its database blocks its loop in connection attempts, and its log
filled with aiocoap's "Exception in BlockwiseRequest runner neither went to response nor
to observation: invalid state" tracebacks).

After the stall, the loop handles the datagram first (its runner is woken for the next
pass) and then the timer, which cancelled the request's response future; in the next
pass the runner set its result on that cancelled future (InvalidStateError), which
aiocoap can only log. The device here is a raw UDP socket served by a thread, so it
answers while the loop stands still; the test stalls the loop itself, as a blocking call
does, while the answer is sent and until past the read's deadline.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from aiocoap import ACK, CON, Message
from aiocoap.numbers.codes import Code

from reconciler.errors import DeviceTimeout
from reconciler.lwm2m.codecs import ContentFormat, encode
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.lwm2m import Path

FW_VERSION = Path(3, 0, 3)
TIMEOUT = 0.2  # the read's own deadline
STALL = 0.5  # the loop stands still this long once the answer is on its way


class ThreadDevice:
    """Registers from its own socket and answers a GET, in a thread, once `go` is set."""

    def __init__(self, server_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.connect(("127.0.0.1", server_port))
        self.sock.settimeout(0.1)
        self.asked, self.go = threading.Event(), threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def register(self, endpoint: str) -> None:
        message = Message(_mtype=CON, _mid=1, _token=b"reg", code=Code.POST, uri_path=("rd",),
                          uri_query=(f"ep={endpoint}", "lt=300", "lwm2m=1.1"),
                          content_format=40, payload=b"</3/0>,</5/0>")
        self.sock.send(message.encode())
        answer = Message.decode(self.sock.recv(2048))
        assert answer.code == Code.CREATED, answer
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                request = Message.decode(self.sock.recv(2048))
            except TimeoutError:
                continue
            if request.code != Code.GET:
                continue
            self.asked.set()
            self.go.wait(5)
            payload = encode(ContentFormat.TLV, FW_VERSION, {FW_VERSION: "1.0"})
            self.sock.send(Message(_mtype=ACK, _mid=request.mid, _token=request.token,
                                   code=Code.CONTENT, payload=payload,
                                   content_format=ContentFormat.TLV).encode())

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.sock.close()


@pytest.fixture
def device(server: Lwm2mServer) -> Iterator[ThreadDevice]:
    made = ThreadDevice(server.port)
    yield made
    made.close()


async def test_an_answer_due_with_our_timeout_after_a_stall_logs_no_aiocoap_error(
        server: Lwm2mServer, device: ThreadDevice, caplog: pytest.LogCaptureFixture) -> None:
    await asyncio.to_thread(device.register, "stalled")
    read = asyncio.ensure_future(server.client("stalled").read(FW_VERSION, timeout=TIMEOUT))
    while not device.asked.is_set():  # another thread: nothing to await
        await asyncio.sleep(0.001)
    device.go.set()  # the answer comes while the loop stands still
    time.sleep(STALL)  # as in a blocking connect, past the read's deadline
    with caplog.at_level(logging.ERROR, logger="coap-server"):
        try:
            values = await read
        except DeviceTimeout:
            values = None
        runners = [t for t in asyncio.all_tasks() if t.get_name().startswith("Blockwise")]
        await asyncio.wait_for(asyncio.gather(*runners, return_exceptions=True), 5)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert values in (None, {FW_VERSION: "1.0"})  # the answer, if it came in time
