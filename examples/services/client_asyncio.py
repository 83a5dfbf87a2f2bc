"""asyncio client: many requests in flight, answers awaited with ``receive_async``."""

from __future__ import annotations

import asyncio
import sys

from client_common import parse_args, report
from tasks import REPLY_PATTERN, TASK_CHANNEL, make_layer, make_request


async def ask(layer, request_id: int, n: int, timeout: float) -> dict | None:
    # new_channel and send are quick Redis round trips; only the wait is async.
    reply_channel = layer.new_channel(REPLY_PATTERN)
    layer.send(TASK_CHANNEL, make_request(request_id, n, reply_channel))

    async def wait() -> dict:
        while True:
            channel, message = await layer.receive_async([reply_channel])
            if channel is not None:
                return message

    try:
        return await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        return None


async def run(args) -> list[dict | None]:
    layer = make_layer()
    if "asyncio" not in layer.extensions:
        raise SystemExit(f"{layer} has no asyncio extension")
    slots = asyncio.Semaphore(args.concurrency)

    async def limited(request_id: int) -> dict | None:
        async with slots:
            return await ask(layer, request_id, args.n + request_id, args.timeout)

    return await asyncio.gather(*(limited(i) for i in range(args.count)))


def main() -> int:
    args = parse_args(__doc__)
    return report(args, asyncio.run(run(args)))


if __name__ == "__main__":
    sys.exit(main())
