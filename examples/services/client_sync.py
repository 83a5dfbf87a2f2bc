"""Plain blocking client: one request at a time, each with its own reply channel."""

from __future__ import annotations

import sys
import time

from client_common import parse_args, report
from tasks import REPLY_PATTERN, TASK_CHANNEL, make_layer, make_request


def ask(layer, request_id: int, n: int, timeout: float) -> dict | None:
    reply_channel = layer.new_channel(REPLY_PATTERN)
    layer.send(TASK_CHANNEL, make_request(request_id, n, reply_channel))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Blocks until the answer arrives or the layer's own wait ends.
        channel, message = layer.receive([reply_channel], block=True)
        if channel is not None:
            return message
    return None


def main() -> int:
    args = parse_args(__doc__)
    layer = make_layer()
    answers = [ask(layer, i, args.n + i, args.timeout) for i in range(args.count)]
    return report(args, answers)


if __name__ == "__main__":
    sys.exit(main())
