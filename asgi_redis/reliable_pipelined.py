"""`send_many_then_receive` for a layer with at-least-once channels (issue 17).

The worker sends a consumer's replies with its next receive (`pipelined`). When some of
the names it receives on are at-least-once (`reliable`), the receive is a `LEASE`
script, which also carries the acknowledgement of the previous message
(`Reliable.ack_later`). On one shard, non-blocking, the ``SEND_MANY`` of the replies and
the ``LEASE`` go out in one pipeline on one connection: Redis runs them in that order,
so the replies are stored before the message they answer is acknowledged, and the
worker pays one round trip per message, as at-most-once.

A reply refused there (its channel full, Redis out of memory) is retried by the worker
after the acknowledgement went through: a worker killed during that retry loses that
reply, not the message's other effects. Otherwise (several shards, a blocking receive,
process-specific names among the names) it sends, then receives.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis

from channels.layers.base import ReceiveFailed, layer_random

from . import scripts
from .receiving import Received
from .reliable_scripts import LEASE
from .sending import Outcomes

if TYPE_CHECKING:
    from .core import RedisChannelLayer

__all__ = ["reliable_send_then_receive"]


def reliable_send_then_receive(
    layer: RedisChannelLayer,
    messages: Iterable[tuple[str, dict[str, Any]]],
    channels: Iterable[str],
    block: bool,
) -> tuple[Outcomes, Received]:
    reliable = layer._reliable
    assert reliable is not None, "only for a layer with at-least-once channels"
    receiver = layer._receiver
    names = receiver.receive_plan(channels).names  # validated once per list
    split = reliable.split(names)
    if split is None:  # no at-least-once name: the usual pipeline
        return layer._send_then_receive(messages, names, block)
    sender = layer._sender
    pairs = list(messages)
    batches = sender.batches(pairs)  # every message checked before anything is sent
    outcomes: Outcomes = [None] * len(pairs)
    placement = layer._placement
    if block or placement.ring_size != 1 or split.buffered or not batches:
        outcomes = sender.send_batches(batches, outcomes)
        try:
            return outcomes, layer.receive(names, block)
        except Exception as error:  # any backend failure; the names were checked above
            raise ReceiveFailed(outcomes, error) from error
    shard = placement.shards[0]
    batch = batches[shard]
    order = list(split.scripted)
    layer_random.shuffle(order)
    keys, args = sender.send_many_arguments(shard, batch)
    lease_keys, lease_args, acks = reliable.lease_arguments(0, order)
    commands = [scripts.SEND_MANY.packed(keys, args), LEASE.packed(lease_keys, lease_args)]
    try:
        replies = shard.pipeline(commands)
    except redis.RedisError as error:
        reliable.unsent_acks(0, acks)
        for position, *_ in batch:
            outcomes[position] = error
        raise ReceiveFailed(outcomes, error) from error
    layer._send_then_receive.settle(shard, batch, replies[0], outcomes)
    reply = replies[1]
    if isinstance(reply, redis.ResponseError):
        # NOSCRIPT (a restarted server) or a refusal: nothing of the lease ran.
        reliable.unsent_acks(0, acks)
        try:
            return outcomes, layer.receive(names, False)
        except Exception as error:
            raise ReceiveFailed(outcomes, error) from error
    found, _ = reliable.lease_result(shard, 0, order, reply)
    return outcomes, (found if found is not None else (None, None))
