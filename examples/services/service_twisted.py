"""The service on Twisted: ``yield layer.receive_twisted(...)`` for tasks (A-50).

The work runs in Twisted's thread pool, so the reactor stays free. SIGTERM or Ctrl-C lets
the task in hand finish, then the reactor stops.
"""

from __future__ import annotations

import logging
import signal
import sys

from tasks import TASK_CHANNEL, make_layer, reply, service_name
from twisted.internet import defer, reactor, threads


class TwistedService:
    def __init__(self) -> None:
        self.layer = make_layer()
        if "twisted" not in self.layer.extensions:
            raise SystemExit(f"{self.layer} has no twisted extension (A-35)")
        self.name = service_name()
        self.stopping = False
        self.exit_status = 0

    def stop(self, signum: int, frame: object) -> None:
        # Twisted's own handlers would stop the reactor at once, possibly between the
        # layer's pop and our reply; a flag lets the loop finish the task in hand.
        self.stopping = True

    @defer.inlineCallbacks
    def serve(self):
        print(f"service {self.name} ready on {TASK_CHANNEL} (Twisted)", flush=True)
        try:
            while not self.stopping:
                channel, request = yield self.layer.receive_twisted([TASK_CHANNEL])
                if channel is not None:
                    yield threads.deferToThread(reply, self.layer, request, self.name)
        finally:
            reactor.stop()

    def failed(self, failure) -> None:
        logging.getLogger("service").error("Service stopped: %s", failure.getTraceback())
        self.exit_status = 1


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    service = TwistedService()
    signal.signal(signal.SIGTERM, service.stop)
    signal.signal(signal.SIGINT, service.stop)
    reactor.callWhenRunning(lambda: service.serve().addErrback(service.failed))
    reactor.run(installSignalHandlers=False)
    sys.exit(service.exit_status)


if __name__ == "__main__":
    main()
