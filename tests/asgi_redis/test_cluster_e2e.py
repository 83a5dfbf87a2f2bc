"""daphne + runworker on RedisClusterChannelLayer, as real processes (issue 19 item 1).

A 3-master / 3-replica Redis Cluster (`support.redis_harness.RedisCluster`), one
``manage.py runworker --threads 2`` and one daphne (`cluster_stack`); an asyncio client
(`cluster_load`) keeps WebSocket echo (W2) and group broadcast (W3) load running while

- a master is killed (SIGKILL) and its replica promoted by the cluster, twice: the
  master of daphne's reply prefix, then the master of ``websocket.receive`` (another
  master when both are one);
- ``redis-cli --cluster reshard`` moves the slots of daphne's reply prefix and of
  ``websocket.receive`` to another master (MOVED / ASK under load).

Checked: no WebSocket closed (L-62, D-13), every accepted echo and broadcast copy
delivered, nothing twice. Delivery is at-most-once (A-24) and replication asynchronous,
so a kill may lose what the dying master accepted in its last moments; the test counts
such losses and allows a handful per kill (printed), a reshard none. Both daphne reply
readers run: the reactor reading the layer's socket (default) and ``--force-sync``'s
thread.
"""

from __future__ import annotations

import pytest

from asgi_redis.slots import name_slot
from support.redis_harness import redis_server_path
from tests.asgi_redis.cluster_load import LoadResult, run_disrupted
from tests.asgi_redis.cluster_stack import ClusterStack

pytestmark = [pytest.mark.redis, pytest.mark.slow]

# Losses a kill may cause: what the master accepted and had not replicated when killed
# (at the load's ~250 messages/s, a few ms of writes).
KILL_LOSS_ALLOWED = 10


@pytest.fixture(params=["reactor-reader", "thread-reader"])
def stack(request, tmp_path):
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed")
    options = ["--force-sync"] if request.param == "thread-reader" else []
    with ClusterStack(tmp_path, daphne_options=options) as running:
        yield running


def _run(stack: ClusterStack, disrupt) -> LoadResult:
    """The load on the stack's daphne with `disrupt(stack, reply_prefix)` under it."""
    return run_disrupted(stack.ws_base, lambda prefix: disrupt(stack, prefix), stack.output)


def _check(stack: ClusterStack, result: LoadResult, losses_allowed: int) -> None:
    assert result.sockets_closed == [], (result.sockets_closed, stack.output()[-5000:])
    assert result.echo_duplicated == 0 and result.broadcast_copies_duplicated == 0
    assert result.echo_lost <= losses_allowed, result.summary()
    # A broadcast in flight at a kill loses up to its 5 copies (one bundle, A-93).
    assert result.broadcast_copies_lost <= losses_allowed * 5, result.summary()
    assert result.send_errors == 0
    assert stack.daphne.process.poll() is None and stack.worker.process.poll() is None


def test_echo_and_broadcast(stack):
    """W2 and W3 through daphne, the cluster and a worker: all delivered, once."""
    result = _run(stack, lambda stack, prefix: None)
    _check(stack, result, 0)
    assert result.broadcasts_sent > 0 and result.echo_received > 200


def _kill_masters(stack: ClusterStack, reply_prefix: str) -> None:
    cluster = stack.cluster
    first = stack.master_of(reply_prefix)
    second = stack.master_of("websocket.receive")
    cluster.fail_over(first)  # bounded: waits for the promotion
    if second is first:  # both on one master: kill another one that still has a replica
        second = next(
            node
            for node in cluster.master_nodes()
            if node is not first and cluster.has_replica(node)
        )
    cluster.fail_over(second)
    # The group survived the kills (see `test_masters_killed_under_load`).
    members = stack.group_members("room")
    assert len(members) == 5, f"the room group lost members with a master: {members}"


def test_masters_killed_under_load(stack):
    """Two masters killed one after the other (replicas promoted, no manual action):
    no socket closed; echoes and broadcast copies lost only from writes in flight at
    the kills (unreplicated; counted, bounded), broadcasts delivered after recovery
    (A-24, A-44, L-62).

    The ``room`` group must still have its members: a group lost with a master (its
    replica promoted before it had the group: it had not synced yet, issue 19) loses
    every later broadcast, and that is Redis's asynchronous replication, not the layer
    (members do not join again in 1.x); `_kill_masters` tells the two apart.
    """
    result = _run(stack, _kill_masters)
    _check(stack, result, KILL_LOSS_ALLOWED)
    # L-62.4: a pop answered CLUSTERDOWN while a master is elected ran nothing; the
    # worker cancelling it said so in a WARNING each time (some 50 per run, issue 19).
    assert "could not cancel a blocking pop" not in stack.output()


def _reshard(stack: ClusterStack, reply_prefix: str) -> None:
    """``redis-cli --cluster reshard`` moves the lowest slots of a master first: move
    as many as it takes to include the slot of each of the two names."""
    cluster = stack.cluster
    for name in (reply_prefix, "websocket.receive"):
        source = stack.master_of(name)
        count = cluster.slots_of(source).index(name_slot(name)) + 1
        target = next(node for node in cluster.master_nodes() if node is not source)
        cluster.reshard(source, target, count)
        assert stack.master_of(name) is target


def test_reshard_under_load(stack):
    """Slots migrating under load (MOVED / ASK followed): nothing lost, no socket closed."""
    result = _run(stack, _reshard)
    _check(stack, result, 0)
