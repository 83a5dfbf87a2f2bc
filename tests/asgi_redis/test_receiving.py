"""`asgi_redis.receiving`: receive plans, visits and handing out, on real Redis servers
(A-19, A-20, A-28, A-32, L-25, L-29, L-62.5)."""

from __future__ import annotations

import time

import pytest
import redis

from asgi_redis import RedisChannelLayer
from asgi_redis.sharding import consistent_hash
from support.redis_harness import free_port

pytestmark = pytest.mark.redis

# Bound for every wait below: a receive that should return must do so well within.
BOUND = 5.0


def test_a_visit_takes_a_batch_only_from_process_lists(layer_on) -> None:
    """A-20: a ``P!`` list is read in batches (one reader); ``?`` and normal lists one
    entry at a time, so other receivers keep their share."""
    layer = layer_on()
    receiver = layer._receiver
    (visit,) = receiver.plan(["reply.x!", "x.reply?ab", "http.request"], every_shard=False)
    wants = dict(zip(visit.storages, visit.wants, strict=True))
    assert wants == {"reply.x!": layer.prefetch, "x.reply?ab": 1, "http.request": 1}
    assert visit.keys == [layer._placement.list_key(name) for name in visit.storages]


def test_normal_names_visit_one_shard_in_turn_or_every_shard_when_blocking(layer_on) -> None:
    """L-25, L-29: a non-blocking receive looks at one shard per call, in turn; a
    blocking one at every shard."""
    layer = layer_on(shards=3)
    receiver = layer._receiver
    assert receiver.only_shard(["http.request"]) is None
    seen = set()
    for _ in range(3):
        (visit,) = receiver.plan(["http.request"], every_shard=False)
        seen.add(visit.shard.index)
    assert seen == {0, 1, 2}
    visits = receiver.plan(["http.request"], every_shard=True)
    assert sorted(visit.shard.index for visit in visits) == [0, 1, 2]


def test_names_on_one_shard_get_every_rotation_precomputed(layer_on) -> None:
    """A-28: names all on one shard get one order per rotation, each with its visit."""
    layer = layer_on(shards=3)
    receiver = layer._receiver
    names = [f"reply.{n}!" for n in range(40)]
    home = consistent_hash(names[0], 3)
    together = [name for name in names if consistent_hash(name, 3) == home][:3]
    assert receiver.only_shard(together) == home
    plan = receiver.receive_plan(together)
    assert plan.names == together
    firsts = {order[0] for order, _ in plan.orders}
    assert firsts == set(together)
    for order, visits in plan.orders:
        assert [visit.shard.index for visit in visits] == [home]
        assert visits[0].storages == order


def test_a_batch_is_handed_out_in_order_and_the_rest_buffered(layer_on) -> None:
    """A-19, A-20: one pop takes the whole batch; the first message is returned, the
    rest come from memory in order, without a round trip."""
    layer = layer_on()
    for number in range(4):
        layer.send(f"batch.reply!{number}", {"n": number})
    receiver = layer._receiver
    assert receiver.receive(["batch.reply!"], block=True) == ("batch.reply!0", {"n": 0})
    assert receiver.buffer
    for number in range(1, 4):
        found = receiver.buffered(["batch.reply!"])
        assert found == (f"batch.reply!{number}", {"n": number})
    assert receiver.buffered(["batch.reply!"]) is None


def test_a_blocking_pop_gives_up_after_its_timeout(layer_on) -> None:
    """A-32: a wait with nothing to take returns ``(None, None)`` once its time is up."""
    layer = layer_on(shards=2)
    receiver = layer._receiver
    visits = receiver.plan(["idle.chan"], every_shard=True)
    started = time.monotonic()
    assert receiver.blocking_pop(visits, timeout=0.2) == (None, None)
    assert 0.15 <= time.monotonic() - started < BOUND


def test_a_message_waiting_is_taken_at_once_by_a_blocking_receive(layer_on) -> None:
    """A-32: a blocking receive on one shard returns as soon as an entry waits."""
    layer = layer_on()
    layer.receive(["warm"])  # measures the shard's clock: the next receive waits at once
    layer.send("ready.chan", {"x": 1})
    started = time.monotonic()
    assert layer._receiver.receive(["ready.chan"], block=True) == ("ready.chan", {"x": 1})
    assert time.monotonic() - started < BOUND


def test_a_dead_shard_does_not_stop_a_receive_over_several(redis_servers_session) -> None:
    """L-62.5: the shards that answer are still served; only when none answers does
    the receive raise."""
    live = redis_servers_session[0].url
    dead = f"redis://127.0.0.1:{free_port()}/0"
    options = {"prefix": "t-recv-dead:", "stats_prefix": "t-recv-dead-meta:"}
    both = RedisChannelLayer(hosts=[live, dead], **options)
    both.blpop_timeout = 0.2
    sender = RedisChannelLayer(hosts=[live], **options)
    try:
        sender.send("survivor", {"ok": True})
        assert both.receive(["survivor"], block=True) == ("survivor", {"ok": True})
        alone = RedisChannelLayer(hosts=[dead], **options)
        with pytest.raises(redis.ConnectionError):
            alone.receive(["survivor"], block=True)
    finally:
        sender.flush()


def test_channel_in_use_looks_at_the_name_s_own_shard(layer_on) -> None:
    """L-32: `new_channel` checks the candidate's list on its hashed shard."""
    layer = layer_on(shards=2)
    name = "inuse.reply?abc"
    assert layer._receiver.channel_in_use(name) is False
    layer.send(name, {})
    assert layer._receiver.channel_in_use(name) is True
