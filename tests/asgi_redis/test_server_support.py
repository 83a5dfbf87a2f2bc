"""Servers lacking commands (L-28, L-44): fallbacks and the UnsupportedRedis error."""

from __future__ import annotations

import pytest

from asgi_redis import RedisChannelLayer, UnsupportedRedis
from tests.redis_harness import RedisServer, redis_server_path

pytestmark = pytest.mark.redis


@pytest.fixture
def server_without(request):
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    with RedisServer(extra_args=["--rename-command", request.param, ""]) as server:
        yield server


@pytest.mark.parametrize("server_without", ["LMPOP"], indirect=True)
def test_receive_without_lmpop_falls_back_to_lua(server_without) -> None:
    """L-29, L-44: a server without LMPOP (before Redis 7) still serves multi-name receives."""
    layer = RedisChannelLayer(hosts=[server_without.url])
    layer.send("one", {"n": 1})
    layer.receive(["warm"])  # first receive measures the clock with the Lua pop
    assert layer.receive(["zero", "one"]) == ("one", {"n": 1})
    assert layer._shards[0].features().lmpop is False
    layer.send("two", {"n": 2})
    assert layer.receive(["one", "two"]) == ("two", {"n": 2})


@pytest.mark.parametrize("server_without", ["EVALSHA"], indirect=True)
def test_server_without_scripting_raises_unsupported_redis(server_without) -> None:
    """L-28: an "unknown command" reply becomes UnsupportedRedis asking for a newer Redis."""
    layer = RedisChannelLayer(hosts=[server_without.url])
    with pytest.raises(UnsupportedRedis, match="Redis 6.2 or newer"):
        layer.send("x", {})


@pytest.mark.parametrize("server_without", ["BLMPOP"], indirect=True)
def test_blocking_receive_without_blmpop_falls_back_to_blpop(server_without) -> None:
    """L-29, L-44, A-19: without BLMPOP (before Redis 7) a blocking receive waits in BLPOP,
    one entry at a time, and a process-specific channel still comes out in order."""
    layer = RedisChannelLayer(hosts=[server_without.url])
    layer.receive(["warm"])  # first receive measures the clock with the Lua pop
    for index in range(3):
        layer.send(f"reply.x!c{index}", {"n": index})
    got = [layer.receive(["reply.x!"], block=True) for _ in range(3)]
    assert got == [(f"reply.x!c{index}", {"n": index}) for index in range(3)]
    assert layer._shards[0].features().blmpop is False
