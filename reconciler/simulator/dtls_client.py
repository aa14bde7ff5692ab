"""DTLS-PSK for a simulated device's sockets: the device's CoAP layer, unchanged, above it.

`open_datagram(protocol, host, psk)` opens the UDP socket a device's `coap.Endpoint` or a
download's `pull.BlockClient` speaks through. Without a PSK that is the plain socket; with
one (identity, key) a `SecuredSocket` sits between: the protocol sees a transport whose
`sendto` encrypts (a handshake with the peer first, the datagrams waiting for it) and gets
`datagram_received` with the plaintext of each record. One tinydtls client context per
socket, as a device has; a new socket (a reboot) does a new handshake. Bounded: datagrams
waiting for a handshake are capped, a handshake that does not complete within
`HANDSHAKE_DEADLINE` is dropped (the CoAP layer's retransmissions start the next one).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

from DTLSSocket import dtls  # type: ignore[import-untyped]

Addr = tuple[str, int]
Psk = tuple[bytes, bytes]  # (identity, key)

HANDSHAKE_DEADLINE = 10.0  # seconds
RETRANSMIT_CHECK = 0.25  # how often a handshake's lost flight is looked for
MAX_WAITING = 32  # datagrams held per peer while its handshake runs
_CONNECTED = 0x01DE


async def open_datagram(protocol: asyncio.DatagramProtocol, host: str,
                        psk: Psk | None, port: int = 0) -> None:
    """Bind (host, port) for `protocol`: plain, or inside DTLS sessions with `psk`."""
    loop = asyncio.get_running_loop()
    if psk is None:
        await loop.create_datagram_endpoint(lambda: protocol, local_addr=(host, port))
        return
    await loop.create_datagram_endpoint(lambda: SecuredSocket(protocol, psk),
                                        local_addr=(host, port))


def _v6(addr: Addr) -> Addr:
    host = addr[0]
    return (f"::ffff:{host}" if "." in host else host, addr[1])


class SecuredSocket(asyncio.DatagramProtocol):
    """The UDP socket's protocol: DTLS records below, the device's protocol above."""

    def __init__(self, upper: asyncio.DatagramProtocol, psk: Psk) -> None:
        self._upper = upper
        identity, key = psk
        self._identity = identity  # DTLSSocket keeps a char* into it: hold the bytes
        self._ctx: Any = dtls.DTLS(read=self._read, write=self._write, event=self._event,
                                   pskId=identity, pskStore={identity: key})
        self._transport: asyncio.DatagramTransport | None = None
        self._v4 = True
        self._peers: dict[Addr, Any] = {}  # v6 address -> tinydtls Connection
        self._ready: set[Addr] = set()
        self._waiting: dict[Addr, list[bytes]] = {}
        self._current: Addr | None = None
        self._timer: asyncio.Task[None] | None = None

    # -- the transport the device's protocol sees ------------------------------------------

    def sendto(self, data: bytes, addr: Addr | None = None) -> None:
        if addr is None or self._transport is None:
            return
        peer = _v6(addr)
        if peer in self._ready:
            self._ctx.write(self._peers[peer], data)
            return
        waiting = self._waiting.setdefault(peer, [])
        if len(waiting) < MAX_WAITING:
            waiting.append(data)
        if peer not in self._peers:
            self._connect(peer)

    def renew(self) -> None:
        """Forget every session: the next datagram to a peer starts a new handshake (a
        client whose server stopped answering, say a server restarted by kill -9 that
        lost our session and cannot tell us)."""
        for peer in list(self._peers):
            self._forget(peer)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for peer in list(self._peers):
            self._forget(peer)  # frees tinydtls' peer (a close alert goes out first)
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def is_closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default if self._transport is None else \
            self._transport.get_extra_info(name, default)

    # -- asyncio ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._v4 = transport.get_extra_info("socket").family == socket.AF_INET
        self._upper.connection_made(cast(asyncio.DatagramTransport, self))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        peer = _v6((str(addr[0]), int(addr[1])))
        if peer not in self._peers:
            return  # a device talks only inside sessions it opened
        self._current = peer
        try:
            self._ctx.handleMessage(self._peers[peer], data)
        finally:
            self._current = None

    def error_received(self, exc: Exception) -> None:
        self._upper.error_received(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._upper.connection_lost(exc)

    # -- tinydtls callbacks ---------------------------------------------------------------

    def _read(self, peer: tuple[str, int], data: bytes) -> int:
        host, port = peer[0], int(peer[1])
        if self._v4:
            host = host.removeprefix("::ffff:")
        self._upper.datagram_received(data, (host, port))
        return len(data)

    def _write(self, peer: tuple[str, int], data: bytes) -> int:
        if self._transport is None:
            return -1
        host = peer[0].removeprefix("::ffff:") if self._v4 else peer[0]
        self._transport.sendto(data, (host, int(peer[1])))
        return len(data)

    def _event(self, level: int, code: int) -> None:
        peer = self._current
        if peer is None:
            return
        if level == 0 and code == _CONNECTED:
            self._ready.add(peer)
            for data in self._waiting.pop(peer, []):
                self._ctx.write(self._peers[peer], data)
        elif level == 2 or code == 0:  # fatal alert or close_notify: start over next time
            asyncio.get_running_loop().call_soon(self._forget, peer)

    # -- handshakes ----------------------------------------------------------------------

    def _connect(self, peer: Addr) -> None:
        self._current = peer
        try:
            connection = self._ctx.connect(peer[0], peer[1])
        finally:
            self._current = None
        if connection is None:
            self._waiting.pop(peer, None)
            return
        self._peers[peer] = connection
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._handshakes())

    async def _handshakes(self) -> None:
        """Retransmit lost handshake flights; give up on a handshake past its deadline."""
        loop = asyncio.get_running_loop()
        started = {peer: loop.time() for peer in self._peers if peer not in self._ready}
        try:
            while any(peer not in self._ready for peer in self._peers):
                await asyncio.sleep(RETRANSMIT_CHECK)
                self._ctx.checkRetransmit()
                for peer in [p for p in self._peers if p not in self._ready]:
                    if loop.time() - started.setdefault(peer, loop.time()) > HANDSHAKE_DEADLINE:
                        self._forget(peer)
        finally:
            self._timer = None

    def _forget(self, peer: Addr) -> None:
        connection = self._peers.pop(peer, None)
        self._ready.discard(peer)
        self._waiting.pop(peer, None)
        if connection is not None:
            self._ctx.resetPeer(connection)
