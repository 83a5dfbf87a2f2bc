"""Noticing that a shard's Redis restarted (issue 15 item 9, L-62).

A Redis without persistence comes back empty: every group and every queued
message on it is gone, and nothing else tells the processes using it. The
server's ``run_id`` (``INFO server``) is new after every start, so the layer
reads it whenever one of its connections to the shard connects: the first
connection gives the id, and a later one (after an error or an idle socket the
server closed, which is exactly when a restart can have happened) compares.
That is one ``INFO server`` per new connection, never on the hot path, where
connections are reused.

On a changed id the process logs one WARNING naming the shard, and the shard's
global statistics count it under ``shard_restarts``. Several processes notice
the same restart; a marker key named after the old id (``SET NX``, in one
script) lets only the first one count it.

Only `RedisChannelLayer` shards with a fixed address are watched: behind
Sentinel, a new master is another server, not a restart.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis

__all__ = ["RestartWatch", "watch_restarts"]

logger = logging.getLogger("asgi_redis")

# KEYS: marker key for the old run id, global statistics hash. ARGV: TTL of both.
# Counts the restart once, whoever notices it first.
_COUNT_RESTART = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], 'shard_restarts', 1)
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return 1
"""


def server_url(kwargs: dict[str, Any]) -> str:
    """``redis://host:port/db`` (or ``unix://path``) of a connection's settings."""
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"


def _info(connection: Any, section: str) -> dict[str, str]:
    connection.send_command("INFO", section)
    reply = connection.read_response()
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if value:
            fields[name.strip()] = value.strip()
    return fields


class RestartWatch:
    """The ``redis_connect_func`` of one shard's connections: set up the
    connection as redis-py would, then compare the server's run id."""

    def __init__(self, shard: Any) -> None:
        self._shard = shard
        self._lock = threading.Lock()
        self.run_id: str | None = None

    def __call__(self, connection: Any) -> None:
        connection.on_connect()  # AUTH, SELECT, ...: what redis-py does without us
        try:
            run_id = _info(connection, "server").get("run_id")
        except redis.ResponseError:
            return  # INFO refused (e.g. an ACL): nothing to compare
        if run_id is None:
            return
        with self._lock:
            previous, self.run_id = self.run_id, run_id
        if previous is None or previous == run_id:
            return
        self._restarted(connection, previous)

    def _restarted(self, connection: Any, previous: str) -> None:
        url = server_url(self._shard.client().connection_pool.connection_kwargs)
        try:
            persisted = _info(connection, "persistence").get("aof_enabled") == "1"
        except redis.ResponseError:
            persisted = False
        if persisted:
            logger.warning(
                "Redis at %s restarted (run id changed): it has AOF on, so groups and "
                "queued messages were reloaded up to its last fsync",
                url,
            )
        else:
            logger.warning(
                "Redis at %s restarted (run id changed): groups and queued messages on it "
                "were lost (it does not persist them: enable appendonly, or have consumers "
                "re-add their channels to groups; see Deploying)",
                url,
            )
        stats_prefix, _, global_ttl = self._shard.expired.stats_args
        try:
            connection.send_command(
                "EVAL",
                _COUNT_RESTART,
                2,
                f"{stats_prefix}#restart#{previous}",
                f"{stats_prefix}#global#",
                global_ttl,
            )
            connection.read_response()
        except redis.ResponseError as exc:  # e.g. out of memory: the log line stays
            logger.debug("Could not count the restart of %s: %s", url, exc)


def watch_restarts(shard: Any, client: redis.Redis) -> RestartWatch:
    """Make every new connection of `client` check the run id of `shard`'s server."""
    watch = RestartWatch(shard)
    client.connection_pool.connection_kwargs["redis_connect_func"] = watch
    return watch
