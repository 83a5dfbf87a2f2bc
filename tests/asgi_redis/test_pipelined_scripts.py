"""`send_many_then_receive` pipelined on a shard whose script cache lacks ``SEND_MANY``
(A-37, L-62.2).

The pipeline is ``EVALSHA SEND_MANY`` then the pop. On a server that does not know the
script (first use, a restart, ``SCRIPT FLUSH``) the script is refused with NOSCRIPT and
the pop runs before the messages are stored: a blocking pop then waited its whole time
for the message just sent and returned nothing (seen after a multi-shard blocking
receive timed out, which is what first makes the pipelined path apply). Now a
``SCRIPT LOAD`` goes first on a shard not known to hold the script, and a pipeline that
still met NOSCRIPT looks again without waiting.
"""

from __future__ import annotations

import time

import pytest
import redis

from asgi_redis import RedisChannelLayer
from support.redis_harness import RedisServer, redis_server_path

pytestmark = pytest.mark.redis


@pytest.fixture
def three_servers():
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed")
    servers = [RedisServer().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.close()


def test_after_a_multi_shard_wait_timed_out(three_servers):
    layer = RedisChannelLayer(hosts=[server.url for server in three_servers])
    layer.blpop_timeout = 1
    names = [f"idle-{index}" for index in range(6)]
    assert len({layer._placement.home(name) for name in names}) > 1
    assert layer.receive(names, block=True) == (None, None)
    started = time.monotonic()
    outcomes, received = layer.send_many_then_receive([("c!y", {"v": 1})], ["c!"], block=True)
    assert (outcomes, received) == ([None], ("c!y", {"v": 1}))
    assert time.monotonic() - started < 0.5
    assert layer.receive(["c!"]) == (None, None)
    layer.close()


def test_a_flushed_script_cache_still_hands_the_message_out(three_servers):
    layer = RedisChannelLayer(hosts=[three_servers[0].url])
    layer.blpop_timeout = 1
    assert layer.receive(["warm"], block=True) == (None, None)  # measures the clock
    assert layer.send_many_then_receive([("p!a", {"n": 1})], ["p!"], block=True) == (
        [None],
        ("p!a", {"n": 1}),
    )
    client = redis.Redis.from_url(three_servers[0].url)
    client.script_flush()
    client.close()
    # The pop runs before the refused script: looked at again once the script ran.
    assert layer.send_many_then_receive([("p!a", {"n": 2})], ["p!"], block=True) == (
        [None],
        ("p!a", {"n": 2}),
    )
    started = time.monotonic()
    assert layer.send_many_then_receive([("p!a", {"n": 3})], ["p!"], block=True) == (
        [None],
        ("p!a", {"n": 3}),
    )
    assert time.monotonic() - started < 0.5
    layer.close()
