"""The service on Twisted: ``yield layer.receive_twisted(...)`` for tasks.

The work runs in Twisted's thread pool, so the reactor stays free. SIGTERM or Ctrl-C
stops an idle service at once; one busy with a task finishes it first. Either way it
prints ``service <name> stopped``.
"""

from __future__ import annotations

import logging
import signal
import sys

import redis
from tasks import TASK_CHANNEL, lost_redis, make_layer, reply, service_name, stopped
from twisted.internet import defer, reactor, threads


class TwistedService:
    def __init__(self) -> None:
        self.layer = make_layer()
        if "twisted" not in self.layer.extensions:
            raise SystemExit(f"{self.layer} has no twisted extension")
        self.name = service_name()
        self.stopping = False
        self.busy = False
        self.exit_status = 0

    def stop(self, signum: int, frame: object) -> None:
        # Twisted's own handlers would stop the reactor at once, possibly between the
        # layer's pop and our reply; a task in hand is finished first.
        self.stopping = True
        if not self.busy:
            stopped(self.name)

    @defer.inlineCallbacks
    def serve(self):
        print(f"service {self.name} ready on {TASK_CHANNEL} (Twisted)", flush=True)
        while not self.stopping:
            channel, request = yield self.layer.receive_twisted([TASK_CHANNEL])
            if channel is not None:
                self.busy = True
                yield threads.deferToThread(reply, self.layer, request, self.name)
                self.busy = False
        stopped(self.name)

    def failed(self, failure) -> None:
        if failure.check(redis.RedisError, OSError):
            print(lost_redis(failure.value).code, file=sys.stderr, flush=True)
        else:
            logging.getLogger("service").error("Service failed: %s", failure.getTraceback())
        self.exit_status = 1
        reactor.stop()


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
