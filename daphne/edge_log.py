"""Faults at the edge that must be seen but must not flood the log (issue 15 item 7).

`MergedLog` writes one line per kind of event and interval: the first at once, the rest
of the interval's with their count when it ends. `TwistedErrors` is the Twisted log
observer daphne installs at every verbosity: Twisted's errors (events carrying a failure,
or logged at error/critical) and its failures to accept connections (which Twisted logs
at INFO, e.g. ``EMFILE``, too many open files) reach Python logging at ERROR through a
`MergedLog`, so an accept loop failing a thousand times a second gives one line per
interval. Everything else Twisted logs goes to ``fallback`` (stdlib logging at verbosity
2, nowhere below, D-13).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.logger import LogLevel, formatEvent
from twisted.python import threadable

__all__ = ["MergedLog", "TwistedErrors", "ACCEPT_FAILURES"]

# Twisted's (twisted.internet.tcp) lines for a connection it could not accept, or
# accepted only to close it at once because the process is out of file descriptors.
ACCEPT_FAILURES = (
    "Could not accept new connection",
    "EMFILE recovery: Closed socket",
)
_ERROR_LEVELS = frozenset({LogLevel.error, LogLevel.critical})


class MergedLog:
    """Logs at `level`, merged per key to one line every `interval` seconds with a count.

    Used from the reactor's thread only (`TwistedErrors` hands events over to it).
    """

    interval = 10.0

    def __init__(self, logger: logging.Logger, level: int, reactor: Any = None) -> None:
        """`reactor`: the reactor (or a `task.Clock`), a function returning it (read
        when needed, like `HTTPFactory.reactor`), or None for Twisted's global one."""
        self.logger = logger
        self.level = level
        self._reactor: Callable[[], Any]
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            self._reactor = lambda: global_reactor
        elif callable(reactor):
            self._reactor = reactor
        else:
            self._reactor = lambda: reactor
        # key -> [time of the last line, events since, message of the latest]
        self._state: dict[str, list] = {}
        self.totals: dict[str, int] = {}
        self._flush_call: Any = None

    def clock(self) -> float:
        return self._reactor().seconds()

    def report(self, key: str, message: str) -> None:
        """Count one event; log it now if its key logged nothing this interval."""
        self.totals[key] = self.totals.get(key, 0) + 1
        now = self.clock()
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = [now - self.interval, 0, message]
        state[1] += 1
        state[2] = message
        if now - state[0] >= self.interval:
            self._log(state, now)
        else:
            self._schedule_flush(state[0] + self.interval - now)

    def _log(self, state: list, now: float) -> None:
        count, state[0], state[1] = state[1], now, 0
        if count == 1:
            self.logger.log(self.level, "%s", state[2])
        else:
            self.logger.log(self.level, "%s (%d times in %.0f s)", state[2], count, self.interval)

    def flush(self) -> None:
        """Log every count still waiting for the end of its interval (the timer's job)."""
        self._flush_call = None
        now = self.clock()
        waiting = False
        for state in self._state.values():
            if not state[1]:
                continue
            if now - state[0] >= self.interval:
                self._log(state, now)
            else:
                waiting = True
        if waiting:
            self._schedule_flush(self.interval)

    def _schedule_flush(self, delay: float) -> None:
        if self._flush_call is not None:
            return
        self._flush_call = self._reactor().callLater(delay, self.flush)


class TwistedErrors:
    """Twisted log observer: errors to a `MergedLog` at ERROR, the rest to `fallback`."""

    def __init__(
        self,
        merged: MergedLog,
        fallback: Callable[[dict], None] | None = None,
        reactor: Any = None,
    ) -> None:
        self.merged = merged
        self.fallback = fallback
        self.reactor = reactor

    def _report(self, key: str, message: str) -> None:
        if self.reactor is None or threadable.ioThread is None or threadable.isInIOThread():
            self.merged.report(key, message)
        else:  # Twisted logs from its thread pool too; MergedLog lives in the reactor
            self.reactor.callFromThread(self.merged.report, key, message)

    def __call__(self, event: dict) -> None:
        failure = event.get("log_failure")
        log_format = event.get("log_format") or ""
        if failure is not None or event.get("log_level") in _ERROR_LEVELS:
            self._report(self._key(event, failure), self._describe(event, failure))
            if failure is not None:
                # Each one's traceback, shown at verbosity 2 (DEBUG) only.
                self.merged.logger.debug("%s", failure.getTraceback())
        elif log_format.startswith(ACCEPT_FAILURES):
            self._report("accept", _accept_failure(event))
        elif self.fallback is not None:
            self.fallback(event)

    @staticmethod
    def _key(event: dict, failure: Any) -> str:
        kind = "" if failure is None else failure.type.__name__
        return f"{event.get('log_namespace')}:{event.get('log_format')}:{kind}"

    @staticmethod
    def _describe(event: dict, failure: Any) -> str:
        text = _safe_format(event) or "error"
        if failure is not None:
            text = f"{text}: {failure.type.__name__}: {failure.getErrorMessage()}"
        return f"Twisted ({event.get('log_namespace', '?')}): {text}"


def _accept_failure(event: dict) -> str:
    error = event.get("acceptError", "EMFILE")  # the recovery line names no error
    if error in ("EMFILE", "ENFILE"):
        return (
            f"Cannot accept connections: too many open files ({error}); new connections "
            "are closed unanswered. Raise the file limit (ulimit -n) or set "
            "--max-connections below it"
        )
    return f"Cannot accept connections: accept() failed with {error}"


def _safe_format(event: dict) -> str:
    return formatEvent(event)  # never raises: a broken event formats as a note saying so
