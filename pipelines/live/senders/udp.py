"""What the datagram senders share: a non-blocking UDP socket to one address that never raises for an
absent receiver (failed datagrams are counted in ``errors``, sent ones in ``datagrams``)."""

from __future__ import annotations

import socket

from facecast.pipelines.live.frame import SenderError


def resolve(host: str, port: int) -> tuple[int, tuple]:
    """``(address family, socket address)`` of ``host:port`` for UDP; :class:`SenderError` (one line) when the
    port is out of range or the host does not resolve."""
    if not 0 < port < 65536:
        raise SenderError(f"port must be in 1..65535, got {port}")
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except socket.gaierror as exc:
        raise SenderError(f"cannot resolve {host!r} (port {port}): {exc.strerror or exc}") from None
    return family, address


class DatagramSender:
    """A UDP socket to ``host:port``; :meth:`send_datagram` sends one datagram; ``close`` is idempotent and a
    send after it does nothing. :class:`SenderError` (one line) when the host does not resolve."""

    def __init__(self, host: str, port: int) -> None:
        family, address = resolve(host, port)
        self.host, self.port = host, port
        self.errors = 0
        self.datagrams = 0
        self._address = address
        self._socket: socket.socket | None = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    @property
    def closed(self) -> bool:
        return self._socket is None

    def send_datagram(self, data: bytes) -> None:
        if self._socket is None:
            return
        try:
            self._socket.sendto(data, self._address)
        except OSError:
            self.errors += 1
        else:
            self.datagrams += 1

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
