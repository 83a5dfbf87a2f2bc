"""Redis going away and coming back (L-62) on private redis-server processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from asgi_redis import RedisChannelLayer
from support.redis_harness import free_port

pytestmark = pytest.mark.redis


def _layer(server, **options) -> RedisChannelLayer:
    return RedisChannelLayer(hosts=[server.url], **options)


def test_unreachable_at_start_gives_a_clear_error() -> None:
    """L-62.1: construction succeeds; the first operation raises ConnectionError naming
    host and port, for sends, receives (blocking too) and groups."""
    port = free_port()
    layer = RedisChannelLayer(hosts=[("127.0.0.1", port)])
    operations = [
        lambda: layer.send("x", {}),
        lambda: layer.receive(["x"]),
        lambda: layer.receive(["x!"], block=True),
        lambda: layer.group_add("g", "x"),
        lambda: layer.send_group("g", {}),
        lambda: layer.global_statistics(),
        lambda: layer.flush(),
    ]
    for operation in operations:
        with pytest.raises(redis.ConnectionError, match=f"127.0.0.1:{port}"):
            operation()


def test_restart_mid_test_keeps_working(redis_server) -> None:
    """L-62.2: after a restart (data and scripts gone) the next operations succeed;
    scripts are reloaded without the caller seeing NOSCRIPT."""
    layer = _layer(redis_server)
    layer.send("rs", {"n": 1})
    layer.group_add("rs_group", "rs!a")
    assert layer.receive(["rs"]) == ("rs", {"n": 1})

    redis_server.restart()  # empty server, no scripts, every pooled connection dead

    layer.send("rs", {"n": 2})  # the Lua send after a restart: NOSCRIPT handled
    assert layer.receive(["rs"]) == ("rs", {"n": 2})
    layer.group_add("rs_group", "rs!a")
    layer.send_group("rs_group", {"n": 3})
    assert layer.receive(["rs!"], block=True) == ("rs!a", {"n": 3})
    assert layer.global_statistics()["messages_count"] == 2


def test_kill_during_blocking_receive_raises_then_recovers(redis_server) -> None:
    """L-62.1, L-62.3: a blocking pop on a killed server fails (it is not retried, it
    might have taken a message); after a restart the layer works again."""
    layer = _layer(redis_server)
    layer.receive(["kb"])  # connect and learn the server clock
    outcome: list[BaseException | tuple] = []
    started = threading.Event()

    def wait() -> None:
        started.set()
        try:
            outcome.append(layer.receive(["kb!"], block=True))
        except redis.ConnectionError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    assert started.wait(10)
    redis_server.kill()
    thread.join(15)
    assert not thread.is_alive()
    # Either the kill interrupted the BLPOP (error naming the shard) or it came before
    # the pop connected (the same error); never a hang and never a message.
    assert isinstance(outcome[0], redis.ConnectionError), outcome
    assert str(redis_server.port) in str(outcome[0])
    redis_server.start()
    layer.send("kb!x", {"n": 1})
    assert layer.receive(["kb!"], block=True) == ("kb!x", {"n": 1})


def test_one_warning_per_outage_and_one_info_on_recovery(redis_server, caplog) -> None:
    """L-62.4: many failed calls during an outage log one WARNING; the first success logs
    one INFO."""
    layer = _layer(redis_server)
    layer.send("lg", {})
    redis_server.stop()
    with caplog.at_level(logging.INFO, logger="asgi_redis"):
        for _ in range(5):
            with pytest.raises(redis.ConnectionError):
                layer.send("lg", {})
        redis_server.start()
        layer.send("lg", {})
        layer.send("lg", {})
    records = [r for r in caplog.records if r.name == "asgi_redis"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    infos = [r for r in records if r.levelno == logging.INFO]
    # The server came back empty: that restart is the second WARNING (issue 15 item 9).
    assert len(warnings) == 2
    assert "unreachable" in warnings[0].getMessage()
    assert str(redis_server.port) in warnings[0].getMessage()
    assert "restarted (run id changed)" in warnings[1].getMessage()
    assert len(infos) == 1
    assert "answers again" in infos[0].getMessage()


def test_failed_send_raises_and_stores_nothing_twice(redis_server) -> None:
    """L-62.3: a send to a stopped server raises; no hidden retry stores it later."""
    layer = _layer(redis_server)
    layer.send("once", {"n": 0})
    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        layer.send("once", {"n": 1})
    redis_server.start()
    assert layer.receive(["once"]) == (None, None)
    layer.send("once", {"n": 2})
    assert layer.receive(["once"]) == ("once", {"n": 2})
    assert layer.receive(["once"]) == (None, None)


def test_outage_does_not_use_up_connections(redis_server) -> None:
    """L-62.2: failed attempts during an outage reuse their connection, so a pool limited
    by max_connections still serves once the server is back."""
    layer = _layer(redis_server, connection_kwargs={"max_connections": 2})
    layer.send("mc", {"n": 0})
    redis_server.stop()
    for _ in range(10):
        with pytest.raises(redis.ConnectionError):
            layer.send("mc", {"n": 1})
    redis_server.start()
    layer.send("mc", {"n": 2})
    assert layer.receive(["mc"]) == ("mc", {"n": 2})


def test_one_dead_shard_does_not_stop_a_blocking_receive(redis_server_factory) -> None:
    """L-62.5, A-12: with one of three shards down, a blocking receive over a normal
    channel still gets a message waiting on a live shard (the outage is logged)."""
    servers = [redis_server_factory() for _ in range(3)]
    layer = RedisChannelLayer(hosts=[server.url for server in servers])
    dead = layer._shards[0]
    name = next(
        f"dead.shard.{index}"
        for index in range(100)
        if layer._placement.send_shard(f"dead.shard.{index}") is not dead
    )
    servers[0].kill()
    layer.send(name, {"n": 1})
    assert layer.receive([name], block=True) == (name, {"n": 1})
    # Nothing waiting: the receive still returns after its timeout instead of raising.
    assert layer.receive([name], block=True) == (None, None)
    # With every shard down, the receive raises.
    for server in servers[1:]:
        server.kill()
    with pytest.raises(redis.ConnectionError):
        layer.receive([name], block=True)


def test_group_send_reaches_live_shards_then_raises(redis_server_factory) -> None:
    """L-62.3: a group send with a member on a dead shard still delivers to the others
    and then tells the sender."""
    servers = [redis_server_factory() for _ in range(3)]
    layer = RedisChannelLayer(hosts=[server.url for server in servers])
    group_shard = layer._placement.group_shard("gdead")
    names = [f"gdead.m{index}?x" for index in range(60)]
    dead = next(shard for shard in layer._shards if shard is not group_shard)
    on_dead = [name for name in names if layer._placement.send_shard(name) is dead]
    alive = [name for name in names if layer._placement.send_shard(name) is not dead]
    assert on_dead and alive
    for name in names:
        layer.group_add("gdead", name)
    servers[dead.index].kill()
    with pytest.raises(redis.ConnectionError):
        layer.send_group("gdead", {"v": 1})
    for name in alive:
        assert layer.receive([name]) == (name, {"v": 1})


FORK_SCRIPT = """
import os, sys
from asgi_redis import RedisChannelLayer
layer = RedisChannelLayer(hosts=[sys.argv[1]], prefix="t-fork:")
layer.flush()
layer.send("fork.parent", {"n": 0})  # the parent now holds pooled connections
pid = os.fork()
if pid == 0:
    # The child must open its own connections, not talk over the parent's sockets.
    for index in range(200):
        layer.send("fork.child", {"n": index})
        assert layer.receive(["fork.child"]) == ("fork.child", {"n": index})
    os._exit(0)
for index in range(200):
    layer.send("fork.parent", {"n": index + 1})
    assert layer.receive(["fork.parent"])[0] == "fork.parent"
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
"""


def test_forked_child_does_not_share_connections(redis_server) -> None:
    """L-62.2: a process forked after using the layer gets its own connections, so
    parent and child can both keep working."""
    root = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, redis_server.url],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=root),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["child", "0"]
