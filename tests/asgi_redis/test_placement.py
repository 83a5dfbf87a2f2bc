"""`asgi_redis.placement`: keys and shard choice, without Redis (L-22..L-25, L-42, A-25)."""

from __future__ import annotations

import pytest

from asgi_redis.placement import GLOBAL_STATS_KEY, Placement, hashed
from asgi_redis.sharding import consistent_hash

SHARDS = ["s0", "s1", "s2", "s3"]


def placement(shards: list[str] = SHARDS, offset: int = 0) -> Placement[str]:
    return Placement(shards, "asgi:", "asgi-meta:", offset)


def test_keys_sit_under_hash_tags_and_the_prefixes() -> None:
    """L-23, L-42: every key starts with a prefix and hashes on the name alone."""
    placed = placement()
    assert placed.list_key("http.request") == "asgi:{http.request}"
    assert placed.list_key("reply.x!") == "asgi:{reply.x!}"
    assert placed.group_key("chat") == "asgi::group:{chat}"
    assert placed.stats_hash("http.request") == "asgi-meta:{http.request}"
    assert placed.stats_hash(GLOBAL_STATS_KEY) == "asgi-meta:#global#"
    assert placed.global_stats_hash == "asgi-meta:#global#"


@pytest.mark.parametrize("name", ["reply.x!", "http.response?abc", "daphne.response.x!"])
def test_single_reader_and_process_names_sit_on_their_hashed_shard(name: str) -> None:
    """L-25: ``?`` and ``!`` names go to their hashed shard whatever the sender."""
    assert hashed(name)
    expected = SHARDS[consistent_hash(name, len(SHARDS))]
    for offset in range(8):
        placed = placement(offset=offset)
        assert placed.send_shard(name) == expected
        assert placed.home(name) == expected
        assert placed.index(name) == consistent_hash(name, len(SHARDS))
        assert placed.statistics_shards(name) == [expected]


def test_a_normal_channel_goes_to_one_shard_per_sender() -> None:
    """A-25, L-43: one sender always picks the same shard for a channel (its messages
    stay in order); senders with other offsets spread it over every shard."""
    assert not hashed("http.request")
    picks = set()
    for offset in range(len(SHARDS)):
        placed = placement(offset=offset)
        first = placed.send_shard("http.request")
        assert all(placed.send_shard("http.request") == first for _ in range(10))
        picks.add(first)
    assert picks == set(SHARDS)


def test_normal_statistics_are_read_from_every_shard() -> None:
    """L-40: any sender may have counted a normal channel on any shard."""
    assert placement().statistics_shards("http.request") == SHARDS


def test_groups_sit_on_their_hashed_shard() -> None:
    """L-25, L-34: a group's set lives where its name hashes, for every instance."""
    for group in ("chat", "room-1", "a" * 80):
        expected = SHARDS[consistent_hash(group, len(SHARDS))]
        assert {placement(offset=o).group_shard(group) for o in range(5)} == {expected}


def test_one_shard_takes_everything() -> None:
    """L-22: a single host holds every name and group."""
    placed = placement(["only"], offset=12345)
    assert placed.ring_size == 1
    for name in ("http.request", "reply.x!", "x?y"):
        assert placed.send_shard(name) == "only"
        assert placed.home(name) == "only"
    assert placed.group_shard("g") == "only"


def test_a_placement_needs_a_shard() -> None:
    with pytest.raises(ValueError, match="at least one shard"):
        placement([])


def test_placement_follows_the_shard_list_order() -> None:
    """A-23: processes with the same host list agree on every placement."""
    one, other = placement(offset=3), placement(offset=3)
    names = [f"chan.{n}" for n in range(50)] + [f"reply.{n}!" for n in range(50)]
    assert [one.send_shard(n) for n in names] == [other.send_shard(n) for n in names]
