"""Datagrams read and answered in batches: one recvmmsg(2) and one sendmmsg(2) a round.

While firmware blocks stream, the plain socket is read every 10 ms (`fastpath._Reader`)
and ~100 datagrams wait each time; read one `recvmsg` at a time, the syscalls and their
Python wrappers (a tuple, an address string and an ancillary-data list per datagram,
then the same parsed back by `sendmsg`) cost more than answering the block. Python has
no binding for recvmmsg/sendmmsg and PyPI has no maintained one (pysockmmsg 0.0.2,
2021, is the only candidate), so they are called here through ctypes, which drops the
GIL for the call; Linux (glibc's struct layout) only: `DatagramBatch.open` returns
None elsewhere, and the caller keeps its one-datagram-at-a-time path.

The answers leave through the request's own slots: the reply is written over the
request's buffer and sent to the address and with the IPV6_PKTINFO the kernel filled in
on receipt, so the source address of each answer is the address the request was sent
to (as udp6 does with the pktinfo it reads, which matters on a wildcard bind). A
datagram the caller declines is handed on as `socket.recvmsg` would have returned it.
Used by `fastpath._Reader` on aiocoap's udp6 socket (AF_INET6, dual stack).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any, Final

log = logging.getLogger(__name__)

SLOTS = 64  # datagrams a round: a 10 ms poll at 10,000 blocks/s finds ~100
SLOT_BYTES = 4096  # as aiocoap's recvmsg reads: a larger datagram arrives truncated
_NAME_BYTES = 32  # struct sockaddr_in6 (28), aligned
_CONTROL_BYTES = 128  # one IPV6_PKTINFO needs CMSG_SPACE(20) = 40
MSG_DONTWAIT: Final = getattr(socket, "MSG_DONTWAIT", 0x40)


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):  # glibc's struct msghdr
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


class _CMsgHdr(ctypes.Structure):
    _fields_ = [("cmsg_len", ctypes.c_size_t), ("cmsg_level", ctypes.c_int),
                ("cmsg_type", ctypes.c_int)]


def _align(n: int) -> int:
    size = ctypes.sizeof(ctypes.c_size_t)
    return (n + size - 1) & ~(size - 1)


_CMSG_HEADER = _align(ctypes.sizeof(_CMsgHdr))
_PKTINFO_BYTES = 20  # struct in6_pktinfo
PKTINFO_SPACE: Final = _CMSG_HEADER + _align(_PKTINFO_BYTES)


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        receive, send = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    receive.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                        ctypes.c_void_p]
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    receive.restype = send.restype = ctypes.c_int
    return libc


_LIBC = _libc()

Handler = Callable[[bytes], Any]  # the reply bytes, None (no reply) or `declined`
Declined = Callable[[bytes, list[Any], int, Any], None]  # as socket.recvmsg returns
SendOne = Callable[[bytes, list[Any], Any], None]  # data, ancdata, address


class DatagramBatch:
    """Preallocated slots for one AF_INET6 socket: `round` reads, answers and sends."""

    @classmethod
    def open(cls, sock: socket.socket, send_one: SendOne,
             on_error: Callable[[OSError], None]) -> DatagramBatch | None:
        """A batch for `sock`, or None where recvmmsg is unavailable (not Linux) or the
        socket is not one this module reads (not UDP over IPv6, which udp6's is).
        `send_one(data, ancdata, address)`: how a reply the batch cannot send as it
        came (other ancillary data, an oversized reply) is sent; `on_error`: a socket
        error, as the transport reports it."""
        if _LIBC is None or sock.family != socket.AF_INET6 or sock.type != socket.SOCK_DGRAM:
            return None
        if ctypes.sizeof(ctypes.c_void_p) != ctypes.sizeof(ctypes.c_size_t):
            return None  # size_t fields are read through "P" (pointer-sized) views
        return cls(_LIBC, sock, send_one, on_error)

    def __init__(self, libc: Any, sock: socket.socket, send_one: SendOne,
                 on_error: Callable[[OSError], None]) -> None:
        self._libc, self._fd = libc, sock.fileno()
        self._send_one, self._on_error = send_one, on_error
        # Buffers are bytearrays read and written through memoryviews; the kernel sees
        # their addresses. They live as long as this object.
        self._data = bytearray(SLOTS * SLOT_BYTES)
        self._names = bytearray(SLOTS * _NAME_BYTES)
        self._controls = bytearray(SLOTS * _CONTROL_BYTES)
        data, names, controls = (ctypes.addressof(ctypes.c_char.from_buffer(b))
                                 for b in (self._data, self._names, self._controls))
        self._iovs = (_IoVec * SLOTS)()
        self._msgs = (_MMsgHdr * SLOTS)()
        for i in range(SLOTS):
            self._iovs[i].iov_base, self._iovs[i].iov_len = data + i * SLOT_BYTES, SLOT_BYTES
            hdr = self._msgs[i].msg_hdr
            hdr.msg_name, hdr.msg_namelen = names + i * _NAME_BYTES, _NAME_BYTES
            hdr.msg_iov, hdr.msg_iovlen = ctypes.addressof(self._iovs[i]), 1
            hdr.msg_control = controls + i * _CONTROL_BYTES
            hdr.msg_controllen = _CONTROL_BYTES
        # recvmmsg overwrites lengths and the send compacts entries: both are put back
        # from these copies before each read (two memmoves, not a loop).
        self._iovs_template = bytes(self._iovs)
        self._msgs_template = bytes(self._msgs)
        self._msgs_address = ctypes.addressof(self._msgs)
        self._iovs_address = ctypes.addressof(self._iovs)
        self._entry = ctypes.sizeof(_MMsgHdr)
        # Word views of the headers, so a round reads lengths by index, not through
        # ctypes attribute access (~10 times slower).
        stride = self._entry // 4
        hdr_offset = _MMsgHdr.msg_hdr.offset
        self._u32 = memoryview(self._msgs).cast("B").cast("I")
        self._msg_len = (_MMsgHdr.msg_len.offset // 4, stride)
        self._msg_flags = ((hdr_offset + _MsgHdr.msg_flags.offset) // 4, stride)
        self._sizes = memoryview(self._msgs).cast("B").cast("P")
        self._controllen = ((hdr_offset + _MsgHdr.msg_controllen.offset)
                            // ctypes.sizeof(ctypes.c_size_t),
                            self._entry // ctypes.sizeof(ctypes.c_size_t))
        self._iov_len = memoryview(self._iovs).cast("B").cast("P")
        self._msgs_bytes = memoryview(self._msgs).cast("B")
        self._data_view = memoryview(self._data)
        self._control_words = memoryview(self._controls).cast("i")
        level_at = _CMsgHdr.cmsg_level.offset // 4
        self._pktinfo_check = (level_at, _CONTROL_BYTES // 4)

    def round(self, handle: Handler, declined: object, passed: Declined) -> tuple[int, int]:
        """Read what is queued (up to SLOTS datagrams, one recvmmsg), `handle` each and
        send the replies (one sendmmsg). A datagram `handle` answers with `declined` goes
        to `passed` as (data, ancdata, flags, address), as socket.recvmsg gives it.
        Returns (datagrams read, datagrams `handle` answered or dropped)."""
        count = self._receive()
        u32, sizes, view, words = self._u32, self._sizes, self._data_view, self._control_words
        len_at, stride = self._msg_len
        ctl_at, ctl_stride = self._controllen
        level_at, level_stride = self._pktinfo_check
        replies: list[int] = []
        handled = 0
        for i in range(count):
            start = i * SLOT_BYTES
            data = view[start : start + u32[len_at + i * stride]].tobytes()
            reply = handle(data)
            if reply is declined:
                passed(*self.message(i, data))
                continue
            handled += 1
            if not reply:
                continue
            at = level_at + i * level_stride
            if (sizes[ctl_at + i * ctl_stride] == PKTINFO_SPACE and len(reply) <= SLOT_BYTES
                    and words[at] == socket.IPPROTO_IPV6
                    and words[at + 1] == socket.IPV6_PKTINFO):
                view[start : start + len(reply)] = reply
                self._iov_len[2 * i + 1] = len(reply)
                replies.append(i)
            else:  # anything but the one pktinfo udp6 asks for: sent as udp6 would
                _, ancdata, _, address = self.message(i, data)
                self._send_one(reply, ancdata, address)
        if replies:
            self._send(replies)
        return count, handled

    def _receive(self) -> int:
        """recvmmsg into every slot; 0 when nothing is queued. A pending socket error
        (another peer's ICMP error, with IP_RECVERR) is reported as udp6 reports it;
        the failed call cleared it, so the read is tried once more."""
        for _ in range(2):
            ctypes.memmove(self._msgs_address, self._msgs_template, len(self._msgs_template))
            ctypes.memmove(self._iovs_address, self._iovs_template, len(self._iovs_template))
            count: int = self._libc.recvmmsg(self._fd, self._msgs_address, SLOTS,
                                             MSG_DONTWAIT, None)
            if count >= 0:
                return count
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EWOULDBLOCK):
                return 0
            if code != errno.EINTR:
                self._on_error(OSError(code, os.strerror(code)))
        return 0

    def message(self, i: int, data: bytes) -> tuple[bytes, list[Any], int, Any]:
        """Slot i as socket.recvmsg returns it: (data, ancdata, flags, address)."""
        flags_at, stride = self._msg_flags
        flags = self._u32[flags_at + i * stride]
        if flags & 0x80000000:
            flags -= 1 << 32  # msg_flags is a C int
        name = bytes(self._names[i * _NAME_BYTES : i * _NAME_BYTES + 28])
        return data, self._ancdata(i), flags, _address(name)

    def _ancdata(self, i: int) -> list[Any]:
        ctl_at, ctl_stride = self._controllen
        length = self._sizes[ctl_at + i * ctl_stride]
        control = bytes(self._controls[i * _CONTROL_BYTES : i * _CONTROL_BYTES + length])
        found, at = [], 0
        size = ctypes.sizeof(ctypes.c_size_t)
        while at + _CMSG_HEADER <= len(control):
            header = _CMsgHdr.from_buffer_copy(control, at)
            if header.cmsg_len < _CMSG_HEADER:
                break
            found.append((header.cmsg_level, header.cmsg_type,
                          control[at + _CMSG_HEADER : at + header.cmsg_len]))
            at += (header.cmsg_len + size - 1) & ~(size - 1)
        return found

    def _send(self, slots: list[int]) -> None:
        """sendmmsg the replies in `slots`, their headers moved to the front first."""
        entry, raw = self._entry, self._msgs_bytes
        for position, i in enumerate(slots):
            if position != i:  # i > position: entry i is still the one received
                raw[position * entry : (position + 1) * entry] = \
                    raw[i * entry : (i + 1) * entry]
        total, sent, failure = len(slots), 0, 0
        for _ in range(2 * total + 2):  # each turn sends or skips one, or retries once
            if sent >= total:
                return
            done = self._libc.sendmmsg(self._fd, self._msgs_address + sent * entry, total - sent, 0)
            if done > 0:
                sent, failure = sent + done, 0
                continue
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS):
                # a full buffer drops the rest: each was a CON's answer, retransmitted
                log.debug("send buffer full: %d replies dropped", total - sent)
                return
            if code == failure:
                # the same error again: this destination's own (as hardening's sendmsg)
                self._on_error(OSError(code, os.strerror(code)))
                sent, failure = sent + 1, 0
            else:
                # maybe another peer's ICMP error left on the socket: reading it (the
                # failed call did) clears it, so try once more
                failure = code


def _address(name: bytes) -> tuple[str, int, int, int]:
    """A struct sockaddr_in6 as Python's socket module returns it."""
    port = int.from_bytes(name[2:4], "big")
    flowinfo = int.from_bytes(name[4:8], "big")
    scope = int.from_bytes(name[24:28], sys.byteorder)
    host = socket.inet_ntop(socket.AF_INET6, name[8:24])
    if scope:  # link-local: the zone as getnameinfo writes it (recvmsg uses that)
        host = socket.getnameinfo((host, port, flowinfo, scope),
                                  socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)[0]
    return host, port, flowinfo, scope
