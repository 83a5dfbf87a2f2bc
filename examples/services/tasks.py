"""What the service and its clients share: the layer, the channel name, the message shapes.

A request is sent to the normal channel ``services.tasks``, which every service process
reads, so the requests are shared out among them (a message goes to exactly one reader,
A-24). It carries the client's own reply channel, a single-reader ``?`` name from
``new_channel`` (A-12), on which the one answer comes back:

    request  {"id": 7, "n": 20000, "reply_channel": "services.reply?AbCdEfGhIjKl"}
    answer   {"id": 7, "n": 20000, "primes": 2262, "served_by": "4242@host"}
    refusal  {"id": 7, "error": "n must be an int from 0 to 10000000"}
"""

from __future__ import annotations

import logging
import os
import socket

from asgi_redis import RedisChannelLayer

TASK_CHANNEL = "services.tasks"
REPLY_PATTERN = "services.reply?"
MAX_N = 10_000_000

logger = logging.getLogger("service")


def service_name() -> str:
    """How a service signs its answers, so clients can see the work being shared."""
    return f"{os.getpid()}@{socket.gethostname()}"


def make_layer(hosts: list[str] | None = None) -> RedisChannelLayer:
    """The layer every process builds from the same settings (A-4, A-23).

    Without ``hosts``, ``SERVICES_REDIS_HOSTS`` is read: a comma-separated list of Redis
    URLs (several shard the layer); the default is a Redis on this machine.
    """
    if hosts is None:
        hosts = os.environ.get("SERVICES_REDIS_HOSTS", "redis://127.0.0.1:6379/0").split(",")
    return RedisChannelLayer(hosts=hosts, prefix="services:")


def make_request(request_id: int, n: int, reply_channel: str) -> dict:
    return {"id": request_id, "n": n, "reply_channel": reply_channel}


def count_primes(n: int) -> int:
    """The work: how many primes are below ``n`` (a sieve, so it takes a little CPU)."""
    if n < 3:
        return 0
    sieve = bytearray([1]) * n
    sieve[0] = sieve[1] = 0
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, n, i)))
    return sum(sieve)


def answer(request: dict, served_by: str) -> dict:
    """The reply to one request, or a refusal saying what to change."""
    n = request.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_N:
        return {"id": request.get("id"), "error": f"n must be an int from 0 to {MAX_N}"}
    return {"id": request.get("id"), "n": n, "primes": count_primes(n), "served_by": served_by}


def reply(layer: RedisChannelLayer, request: dict, served_by: str) -> None:
    """Send the answer to the request's reply channel (a quick, non-blocking send, A-26)."""
    reply_channel = request.get("reply_channel")
    if not isinstance(reply_channel, str):
        logger.warning("Dropping a request without a reply_channel: %r", request)
        return
    try:
        layer.send(reply_channel, answer(request, served_by))
    except layer.ChannelFull:
        # At most once: the client times out and may ask again.
        logger.warning("Reply channel %s is full; answer dropped", reply_channel)
