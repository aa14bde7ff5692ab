"""`BlockServer`: the firmware fast path on a UDP socket of its own, for tests and bench/.

`Lwm2mServer` runs the fast path beside aiocoap on its one socket (`install_fast_path`);
this standalone server measures the fast path alone (bench/firmware_blocks.py) and lets
the delivery tests speak to it without aiocoap in the way. Not part of the product.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from reconciler.lwm2m.fastpath import DRAIN, FastPath, answer
from reconciler.lwm2m.firmware import FirmwareRepository

log = logging.getLogger(__name__)


class BlockServer:
    """The fast path on a UDP socket of its own (`port=0` picks a free port).

    Reads the socket directly instead of through asyncio's datagram transport, which
    allocates a 256 KiB buffer per datagram; each wake-up drains up to DRAIN datagrams."""

    def __init__(
        self,
        repository: FirmwareRepository,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reuse_port: bool = False,
    ) -> None:
        self._fast = FastPath(repository)
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self._sock: socket.socket | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if self._reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self._host, self._port))
            sock.setblocking(False)
            asyncio.get_running_loop().add_reader(sock.fileno(), self._drain, sock)
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    async def stop(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _drain(self, sock: socket.socket) -> None:
        for _ in range(DRAIN):
            try:
                data, address = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP errors from vanished clients surface here
                log.debug("firmware block socket: %s", exc)
                continue
            reply = answer(self._fast, data, exclusive=True)
            if reply:
                try:
                    sock.sendto(reply, address)
                except OSError as exc:  # a full buffer drops this reply; CON retransmits
                    log.debug("firmware block reply to %s dropped: %s", address, exc)

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("BlockServer is not started")
        return int(self._sock.getsockname()[1])

    @property
    def base_uri(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"coap://{host}:{self.port}"
