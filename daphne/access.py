"""The access log: one line per HTTP response or WebSocket event (D-47, D-48)."""

from __future__ import annotations

import datetime
import logging
from typing import Any, TextIO

__all__ = ["AccessLogGenerator", "log_http_complete"]

logger = logging.getLogger("daphne.http_protocol")

_WEBSOCKET_VERBS = {
    "connecting": "WSCONNECTING",
    "rejected": "WSREJECT",
    "connected": "WSCONNECT",
    "disconnected": "WSDISCONNECT",
}


class AccessLogGenerator:
    """Callable ``(protocol, action, details)`` writing common-log-style lines to a stream."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        # The last line's second and its formatted date: `strftime` per line was about
        # 2.5% of daphne's instructions per request (issue 20, PROFILE.md session 7).
        # The second is compared field by field: ``date.replace(microsecond=0)`` alone
        # was about 9k instructions (its keyword parsing), half of a line's cost.
        self._second: tuple[int, int, int, int, int, int] | None = None
        self._stamp = ""

    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        if protocol == "http" and action == "complete":
            self.write_entry(
                host=details["client"],
                date=datetime.datetime.now(),
                request=f"{details['method']} {details['path']}",
                status=details["status"],
                length=details["size"],
            )
        elif protocol == "websocket" and action in _WEBSOCKET_VERBS:
            self.write_entry(
                host=details["client"],
                date=datetime.datetime.now(),
                request="{} {}".format(_WEBSOCKET_VERBS[action], details["path"]),
            )

    def write_entry(
        self,
        host: str | None,
        date: datetime.datetime,
        request: str,
        status: int | None = None,
        length: int | None = None,
        ident: str | None = None,
        user: str | None = None,
    ) -> None:
        second = (date.second, date.minute, date.hour, date.day, date.month, date.year)
        if second != self._second:
            self._second = second
            self._stamp = date.strftime("%d/%b/%Y:%H:%M:%S")
        self.stream.write(
            f"{host} {ident or '-'} {user or '-'} [{self._stamp}] "
            f'"{request}" {status or "-"} {length or "-"}\n'
        )


def log_http_complete(request: Any) -> None:
    """Give a finished `WebRequest` to the factory's action logger (D-36)."""
    factory = request.factory
    if factory.config.action_logger is None:
        return
    client = request.client_addr
    try:
        factory.log_action(
            "http",
            "complete",
            {
                "path": request.uri.decode("ascii", "replace"),
                "status": request.code,
                "method": request.method.decode("ascii", "replace"),
                "client": f"{client[0]}:{client[1]}" if client else None,
                "time_taken": request.duration(),
                "size": request.sentLength,
            },
        )
    except Exception:
        # D-36: a broken access logger must not break the response.
        logger.exception("Error writing the access log")
