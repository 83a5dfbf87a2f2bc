"""A service process: block on ``receive()`` for tasks, answer on each reply channel.

Run several (``python service.py & python service.py &``); they share the work, also with
the asyncio and Twisted services. SIGTERM or Ctrl-C stops an idle service at once; one
busy with a task finishes it first. Either way it prints ``service <name> stopped``.
"""

from __future__ import annotations

import logging
import signal

import redis
from tasks import TASK_CHANNEL, lost_redis, make_layer, reply, service_name


class Stop(BaseException):
    """Raised by the signal handler to end an idle service's blocking receive."""


class Service:
    def __init__(self) -> None:
        self.layer = make_layer()
        self.name = service_name()
        self.stopping = False
        self.busy = False

    def stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        if not self.busy:
            raise Stop  # interrupts the blocking receive: nothing is in hand

    def run(self) -> None:
        print(f"service {self.name} ready on {TASK_CHANNEL} (plain loop)", flush=True)
        try:
            while not self.stopping:
                channel, request = self.layer.receive([TASK_CHANNEL], block=True)
                if channel is not None:
                    self.busy = True
                    reply(self.layer, request, self.name)
                    self.busy = False
        except Stop:
            pass
        except (redis.RedisError, OSError) as error:
            raise lost_redis(error) from None
        print(f"service {self.name} stopped", flush=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    service = Service()
    signal.signal(signal.SIGTERM, service.stop)
    signal.signal(signal.SIGINT, service.stop)
    service.run()


if __name__ == "__main__":
    main()
