"""The settings and helpers every conformance check shares (A-54).

`conformance.ConformanceTestCase` is what a layer's tests subclass; this module
holds its base, `LayerChecks`, so the check classes can live in several modules.
"""

from __future__ import annotations

import threading
import unittest
from typing import Any

from .base import BaseChannelLayer

__all__ = ["LayerChecks", "call_in_reactor", "run_reactor_in_thread"]

# The modules whose check classes are bases, not a layer's tests.
_CHECK_MODULES = (
    "channels.layers.conformance",
    "channels.layers.conformance_base",
    "channels.layers.conformance_extensions",
)

_reactor_lock = threading.Lock()
_reactor_thread: threading.Thread | None = None


def run_reactor_in_thread() -> Any:
    """Start Twisted's global reactor in a daemon thread (once) and return it.

    Tests talk to it with `twisted.internet.threads.blockingCallFromThread`;
    the reactor cannot be restarted, so every test in a process shares it.
    """
    global _reactor_thread
    from twisted.internet import reactor as installed

    reactor: Any = installed  # the module attribute is typed as a module, not a reactor

    with _reactor_lock:
        if _reactor_thread is None:
            started = threading.Event()
            reactor.callWhenRunning(started.set)
            _reactor_thread = threading.Thread(
                target=reactor.run,
                kwargs={"installSignalHandlers": False},
                name="twisted-reactor",
                daemon=True,
            )
            _reactor_thread.start()
            if not started.wait(10):
                raise RuntimeError("The Twisted reactor did not start within 10 s")
    return reactor


def call_in_reactor(func: Any, *args: Any, timeout: float = 10.0) -> Any:
    """Call `func(*args)` (it may return a Deferred) on Twisted's reactor; return its result.

    When the reactor already runs in another thread (`run_reactor_in_thread`), through
    `blockingCallFromThread`. Otherwise the reactor is run in this thread until the result
    is there and then crashed, as ``twisted.trial`` does between its tests, so it is left
    stopped and can run again: a ``twisted.trial`` test case later in the same process
    (1.x layer suites put one next to their conformance class) still finds a reactor it
    can run, which a reactor left running in a thread would refuse.
    """
    from twisted.internet import defer
    from twisted.internet import reactor as installed
    from twisted.internet.threads import blockingCallFromThread
    from twisted.python.failure import Failure

    reactor: Any = installed
    if reactor.running:
        return blockingCallFromThread(reactor, func, *args)
    outcome: list[Any] = []

    def finish(result: Any) -> None:
        if not outcome:
            outcome.append(result)
        if reactor.running:
            reactor.crash()

    def start() -> None:
        defer.maybeDeferred(func, *args).addBoth(finish)

    def give_up() -> None:
        error = TimeoutError(f"no result from {func!r} within {timeout} s")
        finish(Failure(error))  # type: ignore[no-untyped-call]

    reactor.callWhenRunning(start)
    timer = reactor.callLater(timeout, give_up)
    reactor.run(installSignalHandlers=False)
    if timer.active():
        timer.cancel()
    if getattr(reactor, "threadpool", None) is not None:
        # Its non-daemon threads would keep the process from exiting, since a crashed
        # reactor fires no shutdown; trial's janitor stops it the same way.
        reactor._stopThreadPool()
    if not outcome:  # the reactor stopped for another reason
        raise RuntimeError(f"the reactor stopped before {func!r} gave a result")
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


class LayerChecks(unittest.TestCase):
    """The settings and helpers of the conformance checks; the checks are its subclasses."""

    channel_layer: BaseChannelLayer | None = None
    expiry_delay: float | None = None
    capacity_limit: int | None = None
    receive_tries = 1
    blocking_receive = True

    def setUp(self) -> None:
        if type(self).__module__ in _CHECK_MODULES:
            self.skipTest(f"{type(self).__name__} is a base class; subclass it for a layer")
        if self.channel_layer is None:
            raise ValueError("Set channel_layer on your ConformanceTestCase subclass")
        if self.expiry_delay is None:
            raise ValueError("Set expiry_delay on your ConformanceTestCase subclass")
        if "flush" in self.channel_layer.extensions:
            self.channel_layer.flush()
        super().setUp()

    # -- helpers ---------------------------------------------------------------
    @property
    def _layer(self) -> BaseChannelLayer:
        """`channel_layer`, known to be set (`setUp` refuses to run without it)."""
        layer = self.channel_layer
        if layer is None:
            raise ValueError("Set channel_layer on your ConformanceTestCase subclass")
        return layer

    def receive(self, channels: list[str]) -> tuple[str | None, Any]:
        for _ in range(self.receive_tries):
            channel, message = self._layer.receive(channels)
            if channel is not None:
                return channel, message
        return None, None

    def skip_if_no_extension(self, extension: str) -> None:
        if extension not in self._layer.extensions:
            self.skipTest(f"layer does not list the {extension!r} extension")

    def skip_without_capacity(self) -> int:
        if self.capacity_limit is None:
            self.skipTest("no capacity_limit set for this layer")
        return self.capacity_limit
