"""Twisted client: many requests in flight, answers awaited with ``receive_twisted``."""

from __future__ import annotations

from client_common import parse_args, report
from tasks import REPLY_PATTERN, TASK_CHANNEL, make_layer, make_request
from twisted.internet import defer, task


@defer.inlineCallbacks
def ask(reactor, layer, request_id: int, n: int, timeout: float):
    reply_channel = layer.new_channel(REPLY_PATTERN)
    layer.send(TASK_CHANNEL, make_request(request_id, n, reply_channel))
    deadline = reactor.seconds() + timeout
    while reactor.seconds() < deadline:
        channel, message = yield layer.receive_twisted([reply_channel])
        if channel is not None:
            return message
    return None


@defer.inlineCallbacks
def run(reactor, args, layer):
    slots = defer.DeferredSemaphore(args.concurrency)
    requests = [
        slots.run(ask, reactor, layer, i, args.n + i, args.timeout) for i in range(args.count)
    ]
    answers = yield defer.gatherResults(requests, consumeErrors=True)
    status = report(args, answers)
    if status:
        raise SystemExit(status)  # task.react exits with this code


def main() -> None:
    args = parse_args(__doc__)
    layer = make_layer()  # outside the reactor: a Redis problem is one line, not a traceback
    if "twisted" not in layer.extensions:
        raise SystemExit(f"{layer} has no twisted extension")
    task.react(run, [args, layer])  # runs the reactor until run() finishes, then exits


if __name__ == "__main__":
    main()
