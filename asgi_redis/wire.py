"""Running one Redis command on a pooled connection, without redis-py's command wrapper.

`redis.Redis.execute_command` adds retry bookkeeping and metrics recording to
every call; on the layer's hot path (one command per send or receive) that is
a measurable share of the client's CPU time. This module sends the command on
a connection from the client's own pool and reads the raw reply, so pool,
address, authentication and database settings are still the client's. A
connection that fails mid-command is disconnected, never reused (L-62.2).
"""

from __future__ import annotations

from typing import Any

import redis

__all__ = ["execute"]

_DEFAULT = object()


def execute(client: redis.Redis, *args: Any, read_timeout: Any = _DEFAULT) -> Any:
    """Send ``args`` as one command and return the unparsed reply.

    `read_timeout` overrides the socket timeout for this reply only (a blocking
    pop waits longer than redis-py's default socket timeout).
    """
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_command(*args)
        if read_timeout is _DEFAULT:
            return connection.read_response()
        return connection.read_response(timeout=read_timeout)
    except redis.ResponseError:
        raise  # the reply was read whole; the connection is fine
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
