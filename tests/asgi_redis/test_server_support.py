"""Servers lacking commands (L-28, L-44): fallbacks and the UnsupportedRedis error."""

from __future__ import annotations

import pytest

from asgi_redis import RedisChannelLayer, UnsupportedRedis
from asgi_redis.features import ShardFeatures
from support.redis_harness import RedisServer, redis_server_path

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


def test_a_shard_asks_its_server_what_it_has_once(redis_server) -> None:
    """L-44: a Redis 7 server has LMPOP and BLMPOP; the answer is kept (one probe)."""
    layer = RedisChannelLayer(hosts=[redis_server.url])
    shard = layer._shards[0]
    features = shard.features()
    assert features == ShardFeatures(lmpop=True, blmpop=True)
    assert shard.features() is features


@pytest.mark.parametrize(
    ("renamed", "expected"),
    [
        (["LMPOP"], ShardFeatures(lmpop=False, blmpop=True)),
        # COMMAND refused: the version in INFO server decides (7.x here).
        (["COMMAND"], ShardFeatures(lmpop=True, blmpop=True)),
        # Neither answers: assume the fallbacks (Lua pop, BLPOP), which always work.
        (["COMMAND", "INFO"], ShardFeatures(lmpop=False, blmpop=False)),
    ],
)
def test_the_probe_falls_back_gracefully(renamed, expected) -> None:
    """L-28, L-44: what the server lacks, or will not say, is never guessed from errors."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    extra = [arg for name in renamed for arg in ("--rename-command", name, "")]
    with RedisServer(extra_args=extra) as server:
        layer = RedisChannelLayer(hosts=[server.url])
        assert layer._shards[0].features() == expected
        layer.send("probe.chan!x", {"n": 1})
        layer.send("probe.chan!y", {"n": 2})
        got = [layer.receive(["probe.chan!"], block=True) for _ in range(2)]
        assert got == [("probe.chan!x", {"n": 1}), ("probe.chan!y", {"n": 2})]
        layer.close()
