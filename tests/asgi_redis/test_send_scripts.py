"""The send scripts against a plain reference (issue 20; A-27, A-37, A-40, L-23, L-28,
L-39..L-41, issue 15 item 6, issue 17).

``SEND`` and ``SEND_MANY`` have their common path inline and add up a batch's counts
before writing them. Here the same random traffic runs through them and through a
reference built on the shared prelude's per-message `store` and `count` (each message
counted and its list's TTL set on its own), under two key prefixes on one server, and
everything a client can see must come out the same: replies, list contents in order,
statistics, doorbells and which keys have a TTL of what length.
"""

from __future__ import annotations

import random
import time

import pytest
import redis

from asgi_redis import scripts
from asgi_redis.scripts import Script

pytestmark = pytest.mark.redis

_REFERENCE_CLOCK = """
local function clock(expiry_ms, deadline_text)
  if deadline_text == '' then
    local now = now_ms()
    return now, now, string.format('%013d', now + expiry_ms)
  end
  return tonumber(deadline_text) - expiry_ms, -1, deadline_text
end

local function ring(key, flags, expiry_ms)
  if string.byte(flags, -1) == 98 then
    redis.call('RPUSH', key .. ':bell', '9999999999999B')
    redis.call('PEXPIRE', key .. ':bell', expiry_ms + 1000)
  end
end
"""

REFERENCE_SEND = Script(
    "reference_send",
    _REFERENCE_CLOCK
    + """
local expiry_ms = tonumber(ARGV[2])
local now, reported, deadline_text = clock(expiry_ms, ARGV[3])
local counters = {KEYS[2], KEYS[3], ARGV[6], ARGV[7], string.byte(ARGV[8], 1) == 49}
local stored = store(KEYS[1], tonumber(ARGV[4]), counters, 1, deadline_text .. ARGV[5] .. ARGV[1],
                     expiry_ms, now)
if stored == 1 then ring(KEYS[1], ARGV[8], expiry_ms) end
return {stored, reported}
""",
)

REFERENCE_SEND_MANY = Script(
    "reference_send_many",
    _REFERENCE_CLOCK
    + """
local expiry_ms = tonumber(ARGV[1])
local now, reported, deadline_text = clock(expiry_ms, ARGV[2])
local results = {reported}
for i = 2, #KEYS, 2 do
  local base = 2 * i
  local flags = ARGV[base + 4]
  local counters = {KEYS[i + 1], KEYS[1], ARGV[3], ARGV[4], string.byte(flags, 1) == 49}
  local stored = store(KEYS[i], tonumber(ARGV[base + 2]), counters, 1,
                       deadline_text .. ARGV[base + 3] .. ARGV[base + 1], expiry_ms, now)
  if stored == 1 then ring(KEYS[i], flags, expiry_ms) end
  results[#results + 1] = stored
end
return results
""",
)

EXPIRY_MS = 5_000
# Storage names: normal, single-reader (L-23's short TTL) and process-specific.
NAMES = ["work.a", "work.b", "reply.c?x", "daphne.d!"]
FLAGS = ["", "", "", "1", "b", "1b"]


def _keys(side: str, name: str) -> tuple[str, str]:
    return f"{side}:{{{name}}}", f"{side}-meta:{{{name}}}"


def _global(side: str) -> str:
    return f"{side}-meta:#global#"


def _header(rng: random.Random, name: str) -> bytes:
    if name.endswith("!") and rng.random() < 0.3:
        return b"N" + b",".join(name.encode() + b"m%d" % n for n in range(rng.randint(1, 3))) + b"|"
    return b"M" if rng.random() < 0.7 else b"N" + name.encode() + b"|"


def _deadline(rng: random.Random, server_ms: int) -> bytes:
    """A client's deadline text: mostly live, sometimes already past (so a full send
    trims), sometimes '' (the script reads TIME)."""
    roll = rng.random()
    if roll < 0.1:
        return b""
    if roll < 0.3:
        return b"%013d" % (server_ms - 1000)
    return b"%013d" % (server_ms + EXPIRY_MS)


def _run_batch(client, rng: random.Random, server_ms: int) -> list:
    """One random SEND or SEND_MANY, through both implementations; their replies."""
    deadline = _deadline(rng, server_ms)
    messages = [
        (
            rng.choice(NAMES),
            b"payload-%d" % rng.randint(0, 999),
            rng.choice([1, 2, 3]),
            rng.choice(FLAGS),
        )
        for _ in range(rng.randint(1, 6))
    ]
    headers = [_header(rng, name) for name, *_ in messages]
    single = len(messages) == 1 and rng.random() < 0.5
    replies = []
    for side, send, send_many in [
        ("ref", REFERENCE_SEND, REFERENCE_SEND_MANY),
        ("new", scripts.SEND, scripts.SEND_MANY),
    ]:
        if single:
            (name, payload, capacity, flags), header = messages[0], headers[0]
            list_key, hash_key = _keys(side, name)
            keys = [list_key, hash_key, _global(side)]
            args = [payload, EXPIRY_MS, deadline, capacity, header, 3600, 86400, flags]
            stored, reported = send.run(client, keys, args)
            replies.append(([stored], reported))
            continue
        keys = [_global(side)]
        args = [EXPIRY_MS, deadline, 3600, 86400]
        for (name, payload, capacity, flags), header in zip(messages, headers, strict=True):
            keys += _keys(side, name)
            args += [payload, capacity, header, flags]
        reported, *stored_each = send_many.run(client, keys, args)
        replies.append((stored_each, reported))
    return replies


def _state(client, side: str) -> tuple[dict, dict]:
    """What a client can see under one prefix: entries without their deadlines, hashes;
    and apart, in milliseconds, the deadlines and TTLs (-1: none), which may differ by
    the few milliseconds between the two scripts and the two reads."""
    exact: dict = {}
    timed: dict = {}
    for raw in client.keys(f"{side}*"):
        key = raw.decode().replace(side, "X", 1)
        if client.type(raw) == b"list":
            entries = client.lrange(raw, 0, -1)
            exact[key] = [entry[13:] for entry in entries]
            timed[key] = [int(entry[:13]) for entry in entries]
        else:
            exact[key] = client.hgetall(raw)
        timed[key + " ttl"] = [max(client.pttl(raw), -1)]
    return exact, timed


def _assert_same(new: tuple[dict, dict], ref: tuple[dict, dict], step: int) -> None:
    assert new[0] == ref[0], step
    assert new[1].keys() == ref[1].keys(), step
    for key, values in ref[1].items():
        assert len(new[1][key]) == len(values), (step, key)
        for got, want in zip(new[1][key], values, strict=True):
            assert (got == -1) == (want == -1), (step, key)
            assert abs(got - want) < 500, (step, key, got, want)


@pytest.mark.parametrize("seed", range(8))
def test_send_scripts_match_the_per_message_reference(redis_server, seed) -> None:
    """Random batches (normal, ``?`` and ``!`` lists; tiny capacities, so many are full;
    expired entries, so full sends trim; refresh and doorbell flags; bundles) leave
    exactly what the per-message reference leaves, and give the same replies."""
    client = redis.Redis(port=redis_server.port)
    rng_seed = random.Random(seed).random()
    for step in range(120):
        seconds, micros = client.time()
        server_ms = seconds * 1000 + micros // 1000
        rng = random.Random(f"{rng_seed}-{step}")
        (ref, ref_reported), (new, new_reported) = _run_batch(client, rng, server_ms)
        assert new == ref, step
        assert (new_reported >= 0) == (ref_reported >= 0), step
        if step % 7 == 3:  # a receiver took some entries meanwhile
            name, count = rng.choice(NAMES), rng.randint(1, 3)
            for side in ("ref", "new"):
                client.lpop(_keys(side, name)[0], count)
        if step % 5 == 4:  # TTLs ran low: which script sets which TTL shows now
            for raw in client.keys("ref*") + client.keys("new*"):
                client.pexpire(raw, 100_000)
        if step % 40 == 39:
            time.sleep(0.01)
        _assert_same(_state(client, "new"), _state(client, "ref"), step)
