"""The service on asyncio: ``await layer.receive_async(...)`` for tasks.

The work runs in a thread of the default executor, so the event loop stays free, for
example to serve other coroutines of a larger program. SIGTERM or Ctrl-C stops an idle
service at once; one busy with a task finishes it first. Either way it prints
``service <name> stopped``.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import redis
from tasks import TASK_CHANNEL, lost_redis, make_layer, reply, service_name, stopped


async def serve() -> None:
    layer = make_layer()
    if "asyncio" not in layer.extensions:
        raise SystemExit(f"{layer} has no asyncio extension")
    name = service_name()
    loop = asyncio.get_running_loop()
    busy = False
    stopping = False

    def stop() -> None:
        nonlocal stopping
        stopping = True
        if not busy:
            stopped(name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    print(f"service {name} ready on {TASK_CHANNEL} (asyncio)", flush=True)
    try:
        while not stopping:
            channel, request = await layer.receive_async([TASK_CHANNEL])
            if channel is not None:
                busy = True
                await loop.run_in_executor(None, reply, layer, request, name)
                busy = False
    except (redis.RedisError, OSError) as error:
        raise lost_redis(error) from None
    stopped(name)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve())


if __name__ == "__main__":
    main()
