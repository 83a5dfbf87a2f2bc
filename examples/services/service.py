"""A service process: block on ``receive()`` for tasks, answer on each reply channel.

Run several (``python service.py & python service.py &``); they share the work. SIGTERM or
Ctrl-C lets the current task finish, then the process exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket

from tasks import TASK_CHANNEL, answer, make_layer

logger = logging.getLogger("service")


class Service:
    def __init__(self) -> None:
        self.layer = make_layer()
        self.name = f"{os.getpid()}@{socket.gethostname()}"
        self.stopping = False

    def stop(self, signum: int, frame: object) -> None:
        # The blocking receive returns within its bounded wait (about 5 s on Redis,
        # A-32), so the loop notices the flag without being interrupted mid-task.
        self.stopping = True

    def run(self) -> None:
        print(f"service {self.name} ready on {TASK_CHANNEL}", flush=True)
        while not self.stopping:
            channel, request = self.layer.receive([TASK_CHANNEL], block=True)
            if channel is not None:
                self.handle(request)

    def handle(self, request: dict) -> None:
        reply_channel = request.get("reply_channel")
        if not isinstance(reply_channel, str):
            logger.warning("Dropping a request without a reply_channel: %r", request)
            return
        try:
            self.layer.send(reply_channel, answer(request, self.name))
        except self.layer.ChannelFull:
            # At most once: the client times out and may ask again.
            logger.warning("Reply channel %s is full; answer dropped", reply_channel)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    service = Service()
    signal.signal(signal.SIGTERM, service.stop)
    signal.signal(signal.SIGINT, service.stop)
    service.run()


if __name__ == "__main__":
    main()
