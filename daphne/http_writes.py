"""An HTTP/1.1 connection's response writes: the response's bytes reach the transport in
as few writes as possible (issue 20), and an outbound buffer the client does not read is
bounded (issue 15, `backpressure`).

The bytes go to the socket at once when the transport buffers nothing (`ws_write.write_now`,
plain TCP only): Twisted's ``transport.write`` would buffer them, register the socket for
writing (``epoll_ctl``), send from ``doWrite`` on the next reactor pass through its
logging context, and unregister it (``epoll_ctl``). What the socket does not take, and
every TLS or UNIX transport, goes through ``transport.write`` as before, so the transport's
pause (`_waitingForTransport`, backpressure) and lost-connection handling stay Twisted's.
This replaces Twisted's ``HTTPChannel.write``, which is ``self.transport.write(data)``.

`ResponseWrites` is a mixin for `http_channel.HTTPChannel`; the producer side of the
bounded buffer (pause, resume, abort) stays there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web import http
from twisted.web.http_headers import Headers

from .backpressure import check_outbound
from .ws_write import write_now

__all__ = ["ResponseWrites"]


if TYPE_CHECKING:
    # What the mixin's `super()` reaches: Twisted's channel, after it in `HTTPChannel`'s bases.
    _Channel = http.HTTPChannel
else:
    _Channel = object


class ResponseWrites(_Channel):
    """Mixin for `HTTPChannel` (before Twisted's ``HTTPChannel`` in its bases)."""

    if TYPE_CHECKING:
        factory: Any

    # Each write checks the bounded outbound buffer (issue 15, `backpressure`): a
    # response the application streams faster than the client reads is closed.

    def writeSequence(self, iovec: list) -> None:
        self.write(b"".join(iovec))  # one write: no per-piece type checks (issue 20)

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        if self._holding:
            self._held = data
            return
        write_now(self.transport, data)  # Twisted's `HTTPChannel.write`, sent at once
        if self._waitingForTransport:
            check_outbound(self, self.factory)

    # -- the response's bytes, written together (issue 20) ----------------------------

    # Twisted writes a head as a sequence of a dozen pieces, each type-checked by the
    # transport, then the body and a chunked response's end as two more writes: about
    # 40 Python calls per response. Here the head is one bytes object, held until the
    # body's first write (or `flush_held`); a response given whole (`hold_response`)
    # is held until the request is done, so it reaches the transport as one write.
    _held: bytes | None = None  # response bytes the transport has not been given yet
    _holding = False  # hold every write until `flush_held`

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        if not isinstance(headers, Headers):
            super().writeHeaders(version, code, reason, headers)  # Twisted sanitizes these
            return
        head = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        held = self._held
        self._held = b"".join(head) if held is None else held + b"".join(head)

    def hold_response(self) -> None:
        """Hold what the current request writes until it is done (or `flush_held`)."""
        self._holding = True

    def flush_held(self) -> None:
        """Give the transport what is held (a head without body bytes yet, or a whole
        response); stop holding."""
        self._holding = False
        held = self._held
        if held is not None:
            self._held = None
            write_now(self.transport, held)
            if self._waitingForTransport:
                check_outbound(self, self.factory)
