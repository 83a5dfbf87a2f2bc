"""A service process: block on ``receive()`` for tasks, answer on each reply channel.

Run several (``python service.py & python service.py &``); they share the work, also with
the asyncio and Twisted services. SIGTERM or Ctrl-C lets the current task finish, then the
process exits.
"""

from __future__ import annotations

import logging
import signal

from tasks import TASK_CHANNEL, make_layer, reply, service_name


class Service:
    def __init__(self) -> None:
        self.layer = make_layer()
        self.name = service_name()
        self.stopping = False

    def stop(self, signum: int, frame: object) -> None:
        # The blocking receive returns within its bounded wait (about 5 s on Redis,
        # A-32), so the loop notices the flag without being interrupted mid-task.
        self.stopping = True

    def run(self) -> None:
        print(f"service {self.name} ready on {TASK_CHANNEL} (plain loop)", flush=True)
        while not self.stopping:
            channel, request = self.layer.receive([TASK_CHANNEL], block=True)
            if channel is not None:
                reply(self.layer, request, self.name)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    service = Service()
    signal.signal(signal.SIGTERM, service.stop)
    signal.signal(signal.SIGINT, service.stop)
    service.run()


if __name__ == "__main__":
    main()
