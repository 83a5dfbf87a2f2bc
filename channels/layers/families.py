"""Channel *families*: the low-cardinality form of a channel name, for metric labels (issue 18).

A label per channel name would give every connection its own time series
(``websocket.send!AbCdEfGhIjKl``); a family folds those into one. The Redis and
IPC layer inspections, daphne's and the worker's metrics all use this one rule.
"""

from __future__ import annotations

__all__ = ["OTHER_FAMILY", "FamilyCap", "channel_family"]

# Process-specific prefixes whose last dotted part is random per process
# (daphne's ``daphne.response.<10 letters>!``, daphne/server.py): the family drops it.
_PER_PROCESS_PREFIXES = ("daphne.response.",)

# The label a capped family set gives every family past its limit.
OTHER_FAMILY = "other"


def channel_family(name: str) -> str:
    """The family of channel `name`.

    ``daphne.response.abc!xyz`` → ``daphne.response!``; ``websocket.send!abc`` →
    ``websocket.send!``; ``http.request.body?xyz`` → ``http.request.body?``; a
    plain name (``http.request``) is its own family (A-17: only the part before
    ``!`` or ``?`` names what kind of channel it is).
    """
    for mark in "!?":
        at = name.find(mark)
        if at >= 0:
            head = name[:at]
            for prefix in _PER_PROCESS_PREFIXES:
                if head.startswith(prefix):
                    head = prefix[:-1]
                    break
            return head + mark
    return name


class FamilyCap:
    """Remembers at most `limit` distinct label values; later ones become ``other``.

    A safety net for labels fed by application code (channel names a routing
    listens on, consumer paths): a bug there must not create unbounded series.
    """

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self.limit:
            return OTHER_FAMILY
        self._seen.add(value)  # a racing thread may add one more: harmless
        return value
