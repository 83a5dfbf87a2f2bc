"""Writing to a plain TCP transport at once (issue 20: W3 fan-out, then W1 responses).

Twisted's ``transport.write`` never sends: it appends to the transport's buffer, asks the
reactor to watch the socket for writing (an ``epoll_ctl``), and on the next reactor pass
``doWrite`` sends and stops watching (another ``epoll_ctl``), through Twisted's logging
context and about a dozen Python calls. Per frame of a broadcast to 2,000 sockets that was
about a third of daphne's CPU (benchmarks/PROFILE.md, session 7).

`write_now` sends on the socket directly when nothing is waiting in the transport's
buffer, so the bytes cannot overtake earlier ones; whatever the socket does not take
(a full send buffer, an error) goes to ``transport.write`` as before, so buffering,
the producer's pause (backpressure) and the detection of a lost connection stay
Twisted's. Only for `twisted.internet.tcp.Server` without TLS: any other transport
(TLS, UNIX, a test's) is written through its own ``write``. A half-closed transport
(``loseWriteConnection``) is left to ``write``, which drops the bytes as before. Daphne
uses it for whole data frames (`ws_protocol.WebSocketProtocol.sendData`, `ws_fanout`);
control frames keep Twisted's buffer, so a stop's close frame still follows the listening
socket's close. HTTP/1.1 responses use it too (`http_writes.ResponseWrites`): a response
given whole is one write, so the write event and both ``epoll_ctl`` calls go.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

__all__ = ["write_now"]

_TCP_SERVER = tcp.Server


def write_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sent at once when the transport buffers nothing."""
    if (
        type(transport) is _TCP_SERVER
        and not transport._tempDataBuffer
        and not transport.dataBuffer
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnecting
        and not transport.TLS
        and data
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:  # full (EAGAIN) or broken: Twisted's write deals with it
            sent = 0
        if sent == len(data):
            return
        if sent:
            data = data[sent:]
    transport.write(data)
