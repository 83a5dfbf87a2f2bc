"""What the service and its clients share: the layer, the channel name, the message shapes.

A request is sent to the normal channel ``services.tasks``, which every service process
reads, so the requests are shared out among them (a message goes to exactly one reader).
It carries the client's own reply channel, a single-reader ``?`` name from
``new_channel``, on which the one answer comes back:

    request  {"id": 7, "n": 20000, "reply_channel": "services.reply?AbCdEfGhIjKl"}
    answer   {"id": 7, "n": 20000, "primes": 2262, "served_by": "4242@host"}
    refusal  {"id": 7, "error": "n must be an int from 0 to 10000000"}
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import NoReturn

import redis

from asgi_redis import RedisChannelLayer

TASK_CHANNEL = "services.tasks"
REPLY_PATTERN = "services.reply?"
MAX_N = 10_000_000
URL_VARIABLE = "CHANNELS_REDIS_URL"

logger = logging.getLogger("service")


def service_name() -> str:
    """How a service signs its answers, so clients can see the work being shared."""
    return f"{os.getpid()}@{socket.gethostname()}"


class SetupError(SystemExit):
    """A problem the user fixes in the environment: printed as one line, exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{os.path.basename(sys.argv[0]) or 'services'}: {message}")


def redis_urls() -> list[str]:
    """``CHANNELS_REDIS_URL``: the Redis database(s) to use, comma-separated to shard.

    There is deliberately no default: a guess such as ``redis://127.0.0.1:6379/0`` would
    write into whatever database 0 of a shared Redis holds.
    """
    urls = [url.strip() for url in os.environ.get(URL_VARIABLE, "").split(",") if url.strip()]
    if not urls:
        raise SetupError(
            f"set {URL_VARIABLE} to the Redis database this example may use, "
            f"e.g. {URL_VARIABLE}=redis://127.0.0.1:6379/5 (comma-separate several to shard)"
        )
    return urls


def check_reachable(urls: list[str]) -> None:
    """One clear line, not a traceback, when a Redis of the layer does not answer."""
    for url in urls:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        except (redis.RedisError, OSError) as error:
            raise SetupError(
                f"cannot reach Redis at {url} ({error}); start it or set {URL_VARIABLE}"
            ) from None
        finally:
            client.close()


def make_layer(hosts: list[str] | None = None) -> RedisChannelLayer:
    """The layer every process builds from the same settings, checked to answer.

    Without ``hosts``, ``CHANNELS_REDIS_URL`` is read (:func:`redis_urls`).
    """
    if hosts is None:
        hosts = redis_urls()
    check_reachable(hosts)
    return RedisChannelLayer(hosts=hosts, prefix="services:")


def lost_redis(error: Exception) -> SetupError:
    """The one line for a Redis that stopped answering while running."""
    return SetupError(f"lost the connection to Redis ({error}); check {URL_VARIABLE}")


def stopped(name: str, status: int = 0) -> NoReturn:
    """Say the service stopped and end the process at once.

    ``receive_async`` and ``receive_twisted`` run the blocking receive in a thread, which
    would hold the exit for up to the layer's wait (a few seconds). Only a service with
    no task in hand gets here, so no task is cut short (a message popped in that instant
    is lost: the layer's contract is at most once, and the client times out).
    """
    print(f"service {name} stopped", flush=True)
    logging.shutdown()
    os._exit(status)


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
    """Send the answer to the request's reply channel (a quick, non-blocking send)."""
    reply_channel = request.get("reply_channel")
    if not isinstance(reply_channel, str):
        logger.warning("Dropping a request without a reply_channel: %r", request)
        return
    try:
        layer.send(reply_channel, answer(request, served_by))
    except layer.ChannelFull:
        # At most once: the client times out and may ask again.
        logger.warning("Reply channel %s is full; answer dropped", reply_channel)
