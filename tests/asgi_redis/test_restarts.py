"""A Redis restart is noticed, logged once and counted (issue 15 item 9, L-62).

A private redis-server without persistence is restarted on the same port: its run id
changes and it comes back empty. The layer must log one WARNING naming the server,
count ``shard_restarts`` once however many instances notice, and keep working.
"""

from __future__ import annotations

import logging

import pytest

from asgi_redis import RedisChannelLayer

pytestmark = pytest.mark.redis


def restart_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if "restarted (run id changed)" in r.getMessage()
    ]


def test_restart_is_logged_once_and_counted_once(redis_server, caplog):
    first = RedisChannelLayer(hosts=[redis_server.url])
    second = RedisChannelLayer(hosts=[redis_server.url])
    first.group_add("rs.group", "rs.member")
    second.send("rs.chan", {"n": 1})
    assert first.global_statistics().get("shard_restarts", 0) == 0
    redis_server.restart()  # no persistence: the group and the message are gone
    with caplog.at_level(logging.WARNING, logger="asgi_redis"):
        for _ in range(3):  # reconnects after the restart; later calls reuse connections
            assert first.group_channels("rs.group") == []
            assert second.receive(["rs.chan"]) == (None, None)
    lines = restart_lines(caplog)
    assert len(lines) == 2  # one per layer instance (process), not per call
    for line in lines:
        assert f"Redis at redis://127.0.0.1:{redis_server.port}/0 restarted" in line
        assert "groups and queued messages on it were lost" in line
    assert first.global_statistics()["shard_restarts"] == 1  # counted once for both
    first.send("rs.chan", {"n": 2})
    assert second.receive(["rs.chan"]) == ("rs.chan", {"n": 2})
    first.close()
    second.close()


def test_new_connections_without_restart_say_nothing(redis_server, caplog):
    """Normal operation: reconnecting to the same server is not a restart."""
    layer = RedisChannelLayer(hosts=[redis_server.url])
    with caplog.at_level(logging.WARNING, logger="asgi_redis"):
        layer.send("rs.same", {})
        layer.close()  # every connection closed: the next call connects anew
        assert layer.receive(["rs.same"]) == ("rs.same", {})
    assert not caplog.records
    assert layer.global_statistics().get("shard_restarts", 0) == 0
    layer.close()


def test_restart_with_aof_says_what_was_kept(redis_server_factory, caplog):
    server = redis_server_factory()
    layer = RedisChannelLayer(hosts=[server.url])
    layer.send("rs.aof", {})
    server.extra_args = ["--appendonly", "yes"]
    server.restart()
    with caplog.at_level(logging.WARNING, logger="asgi_redis"):
        layer.receive(["rs.aof"])
    [line] = restart_lines(caplog)
    assert "AOF on" in line
    layer.close()
