"""The service on asyncio: ``await layer.receive_async(...)`` for tasks (A-51).

The work runs in a thread of the default executor, so the event loop stays free, for
example to serve other coroutines of a larger program. SIGTERM or Ctrl-C lets the task in
hand finish, then the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from tasks import TASK_CHANNEL, make_layer, reply, service_name


async def serve() -> None:
    layer = make_layer()
    if "asyncio" not in layer.extensions:
        raise SystemExit(f"{layer} has no asyncio extension (A-35)")
    name = service_name()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print(f"service {name} ready on {TASK_CHANNEL} (asyncio)", flush=True)
    while not stopping.is_set():
        # Not cancelled on a signal: a receive cut short after the layer popped a message
        # would lose it. The wait is bounded (about 5 s, A-32), so the flag is seen soon.
        channel, request = await layer.receive_async([TASK_CHANNEL])
        if channel is not None:
            await loop.run_in_executor(None, reply, layer, request, name)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve())


if __name__ == "__main__":
    main()
