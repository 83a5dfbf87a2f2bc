"""A worker's next message taken ahead while it handles one (issue 20; C-19, A-27, L-31):
`asgi_redis.lookahead` on a real redis-server.

The worker's side (`Worker.run` with it) is tests/channels/test_worker_lookahead.py.
"""

from __future__ import annotations

import time

import pytest
import redis

from asgi_redis import RedisChannelLayer

pytestmark = pytest.mark.redis


def llen(server, channel):
    with redis.Redis.from_url(server.url) as client:
        return client.llen(f"asgi:{{{channel}}}")


def drain(layer, channel, count):
    return [layer.receive([channel], block=True)[1] for _ in range(count)]


# -- the layer's side -----------------------------------------------------------------


def test_a_backlog_is_taken_two_at_a_time_and_replies_follow_one_call_behind(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url])
    layer.send_many([("work", {"n": n}) for n in range(6)])
    lookahead = layer.lookahead()
    assert lookahead is not None and not lookahead.holding
    channel, message = layer.receive(["work"], block=True)
    handled = [message["n"]]
    unread = 0
    for _ in range(10):
        lookahead.collect()
        outcomes, (channel, message) = lookahead.send_then_take(
            [("reply", {"n": handled[-1]})], ["work"], quick=True
        )
        unread += outcomes is None
        if channel is None:
            break
        handled.append(message["n"])
    assert handled == list(range(6))
    # The first call pops two; the next four send behind the held message, unread.
    assert unread == 4
    assert not lookahead.holding
    assert drain(layer, "reply", 6) == [{"n": n} for n in range(6)]
    assert layer.receive(["reply"]) == (None, None)


def test_a_slow_message_takes_the_next_one_alone(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url])
    layer.send_many([("work", {"n": n}) for n in range(5)])
    lookahead = layer.lookahead()
    layer.receive(["work"], block=True)
    outcomes, (_, message) = lookahead.send_then_take([], ["work"], quick=False)
    assert outcomes == [] and message == {"n": 1}
    assert not lookahead.holding
    assert llen(redis_server, "work") == 3  # nothing taken beyond the one handed out
    lookahead.send_then_take([], ["work"], quick=True)
    assert lookahead.holding  # {"n": 3}
    # After a slow message, the replies are sent and answered before the held one is
    # handed out, and nothing more is taken.
    outcomes, (_, message) = lookahead.send_then_take([("reply", {})], ["work"], quick=False)
    assert outcomes == [None] and message == {"n": 3} and not lookahead.holding
    assert llen(redis_server, "work") == 1


def test_an_expired_held_message_is_dropped_and_counted(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url], expiry=1)
    layer.send_many([("work", {"n": n}) for n in range(3)])
    lookahead = layer.lookahead()
    layer.receive(["work"], block=True)
    _, (_, message) = lookahead.send_then_take([], ["work"], quick=True)
    assert message == {"n": 1} and lookahead.holding
    time.sleep(1.2)  # past the expiry (1 s): only time passing expires a message
    # The held {"n": 2} must not come out, and it is counted.
    assert lookahead.take_held() == (None, None)
    assert layer.channel_statistics("work")["expired_count"] == 1


def test_a_held_message_goes_back_to_the_head_of_its_list(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url])
    layer.send_many([("work", {"n": n}) for n in range(4)])
    lookahead = layer.lookahead()
    layer.receive(["work"], block=True)
    lookahead.send_then_take([], ["work"], quick=True)
    assert lookahead.holding
    lookahead.put_back()
    assert not lookahead.holding
    assert drain(layer, "work", 2) == [{"n": 2}, {"n": 3}]


def test_a_full_reply_pauses_the_lookahead(redis_server):
    """C-19: after a reply refused as full, messages are taken one at a time for
    `full_pause`, so every reply is settled before the next message is handled."""
    layer = RedisChannelLayer(hosts=[redis_server.url], channel_capacity={"reply": 1})
    layer.send("reply", {"n": "old"})  # full
    layer.send_many([("work", {"n": n}) for n in range(5)])
    lookahead = layer.lookahead()
    layer.receive(["work"], block=True)
    outcomes, (_, message) = lookahead.send_then_take([("reply", {"n": 0})], ["work"], True)
    # Refused in the pipeline that also took the next two: the held one is kept.
    assert isinstance(outcomes[0], layer.ChannelFull) and message == {"n": 1}
    assert lookahead.holding
    # From now on each call's outcomes come with it (no send behind a held message)
    # and nothing more is taken ahead.
    outcomes, (_, message) = lookahead.send_then_take([("reply", {"n": 1})], ["work"], True)
    assert isinstance(outcomes[0], layer.ChannelFull) and message == {"n": 2}
    assert not lookahead.holding
    outcomes, (_, message) = lookahead.send_then_take([], ["work"], quick=True)
    assert outcomes == [] and message == {"n": 3} and not lookahead.holding
    assert llen(redis_server, "work") == 1


@pytest.mark.parametrize(
    "options",
    [{"at_least_once": ["work"]}],
    ids=["at-least-once"],
)
def test_no_lookahead_where_a_pop_must_not_take_ahead(redis_server, options):
    assert RedisChannelLayer(hosts=[redis_server.url], **options).lookahead() is None
