"""`socket_sender`: send_many written to sockets without waiting (issue 15).

Driven here without an event loop: the test connects each pipe, then polls its socket
and calls `write_some` / `read` as a reactor would. Real Redis servers throughout.
"""

from __future__ import annotations

import select
import signal
import time

import pytest
import redis

from asgi_redis import RedisChannelLayer
from asgi_redis.socket_send import ShardPipe, SocketSender

pytestmark = pytest.mark.redis


class Outcomes:
    def __init__(self) -> None:
        self.results: list | None = None

    def __call__(self, results: list) -> None:
        self.results = results


def drive(pipes: list[ShardPipe], timeout: float = 10.0) -> None:
    """Connect new pipes, then write and read until no reply is awaited (bounded); a pipe
    that failed (its socket closed) is dropped from the poll."""
    for pipe in pipes:
        if pipe.state == "new":
            pipe.opened(pipe.connect())
    poller = select.poll()
    by_fd = {}
    for pipe in pipes:
        by_fd[pipe.fileno()] = pipe
        poller.register(pipe.fileno(), select.POLLIN | select.POLLOUT)
    give_up = time.monotonic() + timeout
    while any(pipe.waiting for pipe in pipes):
        remaining = give_up - time.monotonic()
        assert remaining > 0, "replies did not arrive"
        for fd, events in poller.poll(remaining * 1000):
            pipe = by_fd[fd]
            if events & select.POLLOUT:
                pipe.write_some()
            if events & select.POLLIN:
                pipe.read()
            if pipe.state != "open" or pipe.fileno() != fd:
                poller.unregister(fd)
            elif not pipe.wants_write():
                poller.modify(fd, select.POLLIN)


def test_messages_are_stored_in_order_with_one_outcome_each(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url], capacity=3)
    sender = layer.socket_sender()
    assert isinstance(sender, SocketSender)
    outcomes = Outcomes()
    pairs = [("sock.send", {"n": n}) for n in range(4)] + [("bad name!!", {"n": 9})]
    pipes = sender.submit(pairs, outcomes)
    assert outcomes.results is None  # nothing waited for Redis
    drive(pipes)
    kinds = [None if r is None else type(r) for r in outcomes.results]
    assert kinds[:3] == [None, None, None]
    assert kinds[3] is layer.ChannelFull  # capacity 3
    assert kinds[4] is not None and issubclass(kinds[4], Exception)  # invalid: its own error
    assert [layer.receive(["sock.send"])[1]["n"] for _ in range(3)] == [0, 1, 2]
    assert layer.channel_statistics("sock.send")["channel_full_count"] == 1
    sender.close()
    layer.close()


def test_a_too_large_message_fails_alone(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url])
    sender = layer.socket_sender()
    outcomes = Outcomes()
    big = {"bytes": b"x" * (layer.max_message_size + 1)}
    drive(sender.submit([("sock.a", {"n": 1}), ("sock.a", big), ("sock.a", {"n": 2})], outcomes))
    assert outcomes.results[0] is None and outcomes.results[2] is None
    assert isinstance(outcomes.results[1], layer.MessageTooLarge)
    sender.close()
    layer.close()


def test_a_lost_connection_fails_what_waits_and_the_next_batch_reconnects(redis_server):
    """L-62: a restart closes the connection: the waiting batch hears a connection error
    naming the shard; the next batch reconnects and loads the script again."""
    layer = RedisChannelLayer(hosts=[redis_server.url])
    sender = layer.socket_sender()
    drive(sender.submit([("sock.r", {"n": 0})], Outcomes()))
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        outcomes = Outcomes()
        pipes = sender.submit([("sock.r", {"n": 1})], outcomes)
        assert outcomes.results is None  # written; Redis is stopped, nobody waits
    finally:
        redis_server.kill()  # SIGKILL ends it while stopped: the command never ran
    redis_server.start()
    for _ in range(1000):
        pipes[0].read()
        if outcomes.results is not None:
            break
        select.select([pipes[0].fileno()] if pipes[0].fileno() >= 0 else [], [], [], 0.01)
    assert isinstance(outcomes.results[0], redis.ConnectionError)
    assert str(redis_server.port) in str(outcomes.results[0])
    again = Outcomes()
    drive(sender.submit([("sock.r", {"n": 2})], again))  # a new connection, script loaded
    assert again.results == [None]
    assert layer.receive(["sock.r"])[1] == {"n": 2}
    sender.close()
    layer.close()


def test_failed_connects_and_reconnects_use_no_pool_slots(redis_server):
    """Issue 15, L-62: a pipe's connection lives outside the client's pool, so an outage
    longer than the pool's ``max_connections`` connect attempts, or as many
    reconnects, leaves sends working once Redis answers (they used to fail for good
    with "Too many connections")."""
    layer = RedisChannelLayer(hosts=[redis_server.url])
    sender = layer.socket_sender()
    (pipe,) = sender.pipes.values()
    pool = layer._shards[0].client().connection_pool
    pool.max_connections = 3  # the same exhaustion as at 100, in fewer (slow) attempts
    redis_server.stop()
    for _ in range(pool.max_connections + 5):
        with pytest.raises(redis.ConnectionError):
            pipe.connect()
    redis_server.start()
    for _ in range(pool.max_connections + 5):
        pipe.opened(pipe.connect())
        pipe.fail(redis.ConnectionError("dropped by the test"))  # as a lost connection
    outcomes = Outcomes()
    drive(sender.submit([("sock.slots", {"n": 1})], outcomes))
    assert outcomes.results == [None]
    assert layer.receive(["sock.slots"])[1] == {"n": 1}
    sender.close()
    layer.close()


def test_batches_over_two_shards_answer_once_both_did(redis_server_factory):
    servers = [redis_server_factory(), redis_server_factory()]
    layer = RedisChannelLayer(hosts=[server.url for server in servers])
    sender = layer.socket_sender()
    outcomes = Outcomes()
    names = [f"sock.s{n}?abc" for n in range(8)]  # single-reader names sit on hashed shards
    pipes = sender.submit([(name, {"name": name}) for name in names], outcomes)
    assert len(pipes) == 2
    drive(pipes)
    assert outcomes.results == [None] * 8
    for name in names:
        assert layer.receive([name])[1] == {"name": name}
    sender.close()
    layer.close()


def test_tls_connections_are_not_sent_to_on_sockets():
    """A TLS socket keeps decrypted bytes its descriptor does not show: refused up front,
    so daphne keeps the blocking send_many (issue 15)."""
    from asgi_redis.socket_send import SocketSendUnsupported

    layer = RedisChannelLayer(hosts=["rediss://127.0.0.1:1/0"])
    with pytest.raises(SocketSendUnsupported, match="TLS"):
        layer.socket_sender()
