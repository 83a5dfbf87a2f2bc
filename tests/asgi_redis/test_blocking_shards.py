"""A blocking receive over several shards waits on all of them at once (A-32, L-25, L-62.5).

Against real redis-servers. "Blocked" is read from each server's ``CLIENT
LIST`` (flag ``b``): the wait must show a blocked client on EVERY shard at the
same time (a rotation of short pops over the shards never does), then take a
message sent to any of them, and leave no client blocked behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from asgi_redis import RedisChannelLayer, RedisSentinelChannelLayer
from asgi_redis.popping import Visit
from asgi_redis.shards_wait import blocking_pop
from support.redis_harness import RedisServer, redis_server_path

pytestmark = pytest.mark.redis

# Long enough that a receive returning a message cannot be its timeout running out.
LONG_WAIT = 30
# Bound on every wait of these tests for something another thread or process does.
BOUND = 10.0


def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for another process's state: no event to await there."""
    deadline = time.monotonic() + BOUND
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {BOUND} s")
        time.sleep(0.002)


def blocked(layer: RedisChannelLayer, index: int) -> list[dict]:
    """The clients blocked in a pop on shard `index`, from its CLIENT LIST."""
    return [client for client in layer.connection(index).client_list() if "b" in client["flags"]]


def blocked_everywhere(layer: RedisChannelLayer) -> bool:
    """Whether pops are blocked on every shard at once.

    The shards are asked in turn and then all but the last once more: a rotation
    of short pops over the shards, blocked on one shard at a time, cannot be seen
    blocked on the first shard both before and after the second.
    """
    shards = layer.ring_size
    return all(blocked(layer, index) for index in [*range(shards), *range(shards - 1)])


def blocked_nowhere(layer: RedisChannelLayer) -> bool:
    return not any(blocked(layer, index) for index in range(layer.ring_size))


def name_on(layer: RedisChannelLayer, shard: int, stem: str) -> str:
    """A normal channel name that `layer` sends to shard `shard`."""
    for number in range(1000):
        name = f"{stem}.{number}"
        if layer._placement.send_shard(name).index == shard:
            return name
    raise AssertionError(f"no name sent to shard {shard}")


class Receiving:
    """A blocking receive running on its own thread."""

    def __init__(self, layer: RedisChannelLayer, names: list[str]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(layer, names), daemon=True)
        self._thread.start()

    def _run(self, layer: RedisChannelLayer, names: list[str]) -> None:
        try:
            self.value = layer.receive(names, block=True)
        except BaseException as exc:  # handed to the test thread by `result`
            self.error = exc

    def result(self) -> Any:
        self._thread.join(BOUND)
        assert not self._thread.is_alive(), "the blocking receive did not return"
        if self.error is not None:
            raise self.error
        return self.value


@pytest.mark.parametrize("shards", [2, 3])
def test_message_on_any_shard_wakes_the_wait(layer_on, shards) -> None:
    """A-32: blocked on every shard at once, the receive returns a message sent to any
    shard while it waits; afterwards no pop is left blocked on the others."""
    receiver = layer_on(shards=shards)
    receiver.blpop_timeout = LONG_WAIT
    sender = layer_on(shards=shards)
    for target in range(shards):
        name = name_on(sender, target, "wake")
        receiving = Receiving(receiver, [name, "wake.idle"])
        until(lambda: blocked_everywhere(receiver), "a pop blocked on every shard")
        sender.send(name, {"shard": target})
        assert receiving.result() == (name, {"shard": target})
        until(lambda: blocked_nowhere(receiver), "every other pop cancelled")


def test_timeout_returns_nothing_and_leaves_no_pop_blocked(layer_on) -> None:
    """A-32: with nothing sent the receive gives up with (None, None) after its timeout,
    and no pop of it is left blocked on any shard."""
    layer = layer_on(shards=3)
    layer.blpop_timeout = 0.3
    assert layer.receive(["quiet.a", "quiet.b"], block=True) == (None, None)
    assert blocked_nowhere(layer)


def test_messages_on_two_shards_at_once_are_each_received_once(layer_on) -> None:
    """A-25, A-32: when the pops on several shards take entries in the same instant,
    one wins and the others' entries go back to the head of their lists: every message
    is received exactly once, and each sender's messages stay in order."""
    layer = layer_on(shards=2)
    name = "race"
    first = layer_on(shards=2)
    second = layer_on(shards=2)
    while second._placement.send_shard(name) is first._placement.send_shard(name):
        second = layer_on(shards=2)
    for number in range(5):
        first.send(name, {"sender": 0, "n": number})
        second.send(name, {"sender": 1, "n": number})
    got = [layer.receive([name], block=True)[1]]
    # Straight to the wait (a receive's non-blocking pass finds messages first): both
    # shards' pops answer at once, so one is cancelled too late and puts its entry back.
    for _ in range(4):
        popped = blocking_pop(layer._receiver.plan([name], every_shard=True), BOUND)
        assert popped is not None
        got.append(layer._receiver.hand_out(popped[0].shard, name, popped[2])[1])
    got += [layer.receive([name], block=True)[1] for _ in range(5)]
    layer.blpop_timeout = 0.2
    assert layer.receive([name], block=True) == (None, None)
    for sender in range(2):
        assert [m["n"] for m in got if m["sender"] == sender] == list(range(5))


def test_put_back_keeps_order_and_gives_an_emptied_list_its_ttl(layer_on) -> None:
    """A-19, A-27: whichever shard wins, the loser's entries (a process-specific batch,
    or a normal channel's message) go back in order, and the list the pop emptied gets
    a TTL again, so it cannot outlive its entries."""
    layer = layer_on(shards=2)
    layer.blpop_timeout = 0.2
    process = "batch!"
    home = layer._placement.send_shard(process).index
    other = name_on(layer, 1 - home, "batch.other")
    lists = {home: layer._placement.list_key(process), 1 - home: layer._placement.list_key(other)}
    # One list per shard, so each pop takes all its list holds (the batch whole).
    visits = [
        Visit(layer._shards[home], [lists[home]], [process], [layer.prefetch]),
        Visit(layer._shards[1 - home], [lists[1 - home]], [other], [1]),
    ]
    for _ in range(6):
        for number in range(4):
            layer.send(f"{process}{number}", {"n": number})
        layer.send(other, {"n": "other"})
        popped = blocking_pop(visits, BOUND)
        assert popped is not None
        winner = popped[0].shard.index
        loser = 1 - winner
        assert layer.connection(winner).exists(lists[winner]) == 0
        assert layer.connection(loser).pttl(lists[loser]) > 0
        storage = process if winner == home else other
        got = [layer._receiver.hand_out(popped[0].shard, storage, popped[2])]
        got += [layer.receive([process, other], block=True) for _ in range(4)]
        assert layer.receive([process, other], block=True) == (None, None)
        assert [pair for pair in got if pair[0] != other] == [
            (f"{process}{number}", {"n": number}) for number in range(4)
        ]
        assert (other, {"n": "other"}) in got


def test_expired_entry_is_dropped_and_the_wait_goes_on(layer_on) -> None:
    """A-27: an entry past its deadline reaching one shard during the wait is dropped,
    and the wait goes on to return the next live message, from another shard."""
    receiver = layer_on(shards=2)
    receiver.blpop_timeout = LONG_WAIT
    sender = layer_on(shards=2)
    name = "stale"
    stale_shard = 1 - sender._placement.send_shard(name).index
    key = receiver._placement.list_key(name)
    receiving = Receiving(receiver, [name])
    until(lambda: blocked_everywhere(receiver), "a pop blocked on every shard")
    expired = b"%013d" % int((time.time() - 60) * 1000) + b"M" + b"never decoded"
    receiver.connection(stale_shard).rpush(key, expired)
    until(
        lambda: not receiver.connection(stale_shard).exists(key) and blocked_everywhere(receiver),
        "the expired entry popped and the wait resumed",
    )
    sender.send(name, {"fresh": True})
    assert receiving.result() == (name, {"fresh": True})
    until(lambda: blocked_nowhere(receiver), "every other pop cancelled")


def blocked_on_every_server(servers: list, label: str) -> tuple:
    """A receiver on `servers` waiting (pops seen blocked on each) for a name on the
    second one: ``(receiver, sender, name, receiving)``."""
    hosts = [server.url for server in servers]
    receiver = RedisChannelLayer(hosts=hosts)
    receiver.blpop_timeout = LONG_WAIT
    sender = RedisChannelLayer(hosts=hosts)
    name = name_on(sender, 1, label)
    receiving = Receiving(receiver, [name])
    until(lambda: blocked_everywhere(receiver), "a pop blocked on every shard")
    return receiver, sender, name, receiving


def test_dead_shard_leaves_the_wait_and_the_others_serve(redis_server_factory) -> None:
    """L-62.5: a shard whose server dies during the wait leaves it; a message on another
    shard is still received. When every shard dies, the receive raises the connection
    error of one of them, naming its address (L-62.1)."""
    servers = [redis_server_factory() for _ in range(3)]
    receiver, sender, name, receiving = blocked_on_every_server(servers, "dying")
    servers[0].kill()
    sender.send(name, {"n": 1})
    assert receiving.result() == (name, {"n": 1})

    alive = [1, 2]
    receiving = Receiving(receiver, [name])
    until(lambda: all(blocked(receiver, i) for i in alive), "pops blocked on the live shards")
    for index in alive:
        servers[index].kill()
    with pytest.raises(redis.ConnectionError) as raised:
        receiving.result()
    assert any(f"127.0.0.1:{server.port}" in str(raised.value) for server in servers)


def test_without_blmpop_the_wait_uses_blpop(layer_on) -> None:
    """L-44: on servers before Redis 7 (no BLMPOP) the wait on several shards falls
    back to BLPOP on each and still takes a message sent while it waits."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    servers = [RedisServer(extra_args=["--rename-command", "BLMPOP", ""]) for _ in range(2)]
    try:
        for server in servers:
            server.start()
        receiver, sender, name, receiving = blocked_on_every_server(servers, "old")
        sender.send(name, {"n": 1})
        assert receiving.result() == (name, {"n": 1})
        assert [shard.features().blmpop for shard in receiver._shards] == [False, False]
        until(lambda: blocked_nowhere(receiver), "every other pop cancelled")
    finally:
        for server in servers:
            server.close()


def test_sentinel_shards_wait_together(sentinel_cluster) -> None:
    """L-50, A-32: a Sentinel layer's shards (here two naming the same service, so both
    are its master) take part in the wait on several shards like fixed servers."""
    hosts = [sentinel_cluster.sentinel_address]
    service = sentinel_cluster.service
    receiver = RedisSentinelChannelLayer(hosts=hosts, services=[service, service])
    receiver.blpop_timeout = LONG_WAIT
    sender = RedisSentinelChannelLayer(hosts=hosts, services=[service, service])
    receiving = Receiving(receiver, ["sentinel.wait"])
    until(lambda: len(blocked(receiver, 0)) == 2, "a pop blocked for each shard on the master")
    sender.send("sentinel.wait", {"n": 1})
    assert receiving.result() == ("sentinel.wait", {"n": 1})
    until(lambda: blocked_nowhere(receiver), "the other pop cancelled")
