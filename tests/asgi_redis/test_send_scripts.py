"""The send scripts against a plain reference (issue 20; A-27, A-37, A-40, L-23, L-28,
L-39..L-41, issue 15 item 6, issue 17).

``SEND`` and ``SEND_MANY`` have their common path inline and add up a batch's counts
before writing them. Here the same random traffic runs through them and through a
reference built on the shared prelude's per-message `store` and `count` (each message
counted and its list's TTL set on its own), under two key prefixes on one server, and
everything a client can see must come out the same: replies, list contents in order,
statistics, doorbells and which keys have a TTL of what length, apart from normal
lists' TTLs, which follow a rule of their own since issue 20 (reset when a send
creates the list, makes room in it or carries its sender's refresh flag), tested
below, with what else sets those TTLs (PUT_BACK, the at-least-once requeue).
"""

from __future__ import annotations

import random
import time

import pytest
import redis

from asgi_redis import scripts
from asgi_redis.reliable_scripts import REQUEUE
from asgi_redis.scripts import EXPIRED_GRACE_MS, Script

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
        ttl = max(client.pttl(raw), -1)
        if _normal_list(key):
            exact[key + " ttl"] = ttl > 0  # its own rule: test_a_busy_normal_list_...
        else:
            timed[key + " ttl"] = [ttl]
    return exact, timed


def _normal_list(key: str) -> bool:
    return key.startswith("X:") and not key.endswith(":bell") and "!" not in key and "?" not in key


def _assert_same(new: tuple[dict, dict], ref: tuple[dict, dict], step: int) -> None:
    assert new[0] == ref[0], step
    assert new[1].keys() == ref[1].keys(), step
    for key, values in ref[1].items():
        assert len(new[1][key]) == len(values), (step, key)
        for got, want in zip(new[1][key], values, strict=True):
            assert (got == -1) == (want == -1), (step, key)
            assert abs(got - want) < 2000, (step, key, got, want)


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


# -- a normal list's TTL (issue 20 on issue 15's grace; L-23 for the others) -----------

GRACE_TTL = EXPIRY_MS + 1000 + EXPIRED_GRACE_MS
LOW = 100_000  # a TTL that ran low


def _send(client, name: str, many: bool = False, capacity: int = 3, flags: str = "") -> int:
    """One message through SEND, or SEND_MANY if `many`; 1 stored or 0 full."""
    list_key, hash_key = _keys("t", name)
    deadline = b"%013d" % (int(time.time() * 1000) + EXPIRY_MS)
    if many:
        args = [EXPIRY_MS, deadline, 3600, 86400, b"p", capacity, b"M", flags]
        return scripts.SEND_MANY.run(client, [_global("t"), list_key, hash_key], args)[1]
    args = [b"p", EXPIRY_MS, deadline, capacity, b"M", 3600, 86400, flags]
    return scripts.SEND.run(client, [list_key, hash_key, _global("t")], args)[0]


def _ttl_after(client, name: str, **send) -> tuple[int, int]:
    """(stored, the list's PTTL) after its TTL ran low and one more send."""
    client.pexpire(_keys("t", name)[0], LOW)
    stored = _send(client, name, **send)
    return stored, client.pttl(_keys("t", name)[0])


@pytest.mark.parametrize("many", [False, True])
def test_a_normal_list_gets_its_ttl_when_made_when_full_or_when_its_sender_refreshes(
    redis_server, many
) -> None:
    """Issue 20: a normal channel's list gets issue 15's TTL (expiry + 1 s + the grace)
    when a send creates it, makes room in it or carries the refresh flag, stored or
    refused, and keeps the TTL it has on other sends; a ``?`` or ``!`` list gets expiry +
    1 s on every stored send, as ever (L-23)."""
    client = redis.Redis(port=redis_server.port)
    assert _send(client, "n", many) == 1
    assert GRACE_TTL - 2000 < client.pttl(_keys("t", "n")[0]) <= GRACE_TTL
    stored, ttl = _ttl_after(client, "n", many=many)
    assert stored == 1 and ttl <= LOW  # the second entry: left alone
    stored, ttl = _ttl_after(client, "n", many=many, flags="1")
    assert stored == 1 and ttl > LOW  # refreshed
    stored, ttl = _ttl_after(client, "n", many=many)
    assert stored == 0 and ttl <= LOW  # full and refused: left alone
    stored, ttl = _ttl_after(client, "n", many=many, flags="1")
    assert stored == 0 and ttl > LOW  # full and refused, but refreshed
    client.delete(_keys("t", "n")[0])
    client.rpush(_keys("t", "n")[0], b"0000000000001M", b"0000000000001M", b"0000000000001M")
    stored, ttl = _ttl_after(client, "n", many=many)
    assert stored == 1 and ttl > LOW  # room made by trimming expired entries
    for name in ("s?x", "p!"):
        _send(client, name, many)
        stored, ttl = _ttl_after(client, name, many=many)
        assert stored == 1 and EXPIRY_MS < ttl <= EXPIRY_MS + 1000


def test_the_refresh_flag_comes_round_well_within_the_grace(layer_on) -> None:
    """The grace a busy normal list keeps is the grace less the senders' refresh
    interval (`scripts._SEND_PRELUDE`): that interval must stay small beside it."""
    layer = layer_on()
    assert layer._sender._refresh_interval * 1000 * 3 <= EXPIRED_GRACE_MS


def test_a_busy_normal_list_never_expires_with_live_entries(layer_on) -> None:
    """Issue 20, A-27, issue 15 item 6: two senders (each with its own refresh schedule,
    made 0.2 s here) keep a normal channel busy with sends and batches while a receiver
    takes some of it; after every step the list's TTL ends at least the grace (less the
    refresh interval) after its newest entry's deadline. (With a TTL reset only where
    a send creates the list, it would lag by the test's 2.5 s.)"""
    interval_ms = 200
    senders = [layer_on(expiry=1) for _ in range(2)]
    for layer in senders:
        layer._sender._refresh_interval = interval_ms / 1000
    client = senders[0].connection(0)
    key = senders[0]._placement.list_key("busy")
    rng = random.Random(20)
    started = time.monotonic()
    steps = 0
    while time.monotonic() - started < 2.5:
        layer = rng.choice(senders)
        if rng.random() < 0.5:
            layer.send("busy", {"n": steps})
        else:
            layer.send_many([("busy", {"n": steps})] * rng.randint(1, 3))
        while client.llen(key) > 20:  # busy, never empty for long, never full
            senders[0].receive(["busy"])
        newest = client.lindex(key, -1)
        if newest is not None:
            seconds, micros = client.time()
            ends = seconds * 1000 + micros // 1000 + client.pttl(key)
            assert ends - int(newest[:13]) >= 1000 + EXPIRED_GRACE_MS - interval_ms - 100, steps
        steps += 1
        time.sleep(0.005)
    assert steps > 50


def test_put_back_gives_a_recreated_list_the_ttl_a_send_would(redis_server) -> None:
    """A cancelled pop's entries go back (`shards_wait`): a list the pop emptied gets
    issue 15's TTL if normal (as a send creating it now would give it), its newest
    entry's deadline plus a second if ``?`` or ``!`` (L-23); a list that exists keeps
    its TTL."""
    client = redis.Redis(port=redis_server.port)
    now_ms = int(time.time() * 1000)
    entries = [b"%013dMold" % (now_ms + 2000), b"%013dMnew" % (now_ms + 3000)]
    for name in ("n", "p!"):
        scripts.PUT_BACK.run(client, [_keys("t", name)[0]], [EXPIRY_MS, *entries[::-1]])
        assert client.lrange(_keys("t", name)[0], 0, -1) == entries
    assert GRACE_TTL - 2000 < client.pttl(_keys("t", "n")[0]) <= GRACE_TTL
    assert 2000 < client.pttl(_keys("t", "p!")[0]) <= 4000
    client.pexpire(_keys("t", "n")[0], LOW)
    scripts.PUT_BACK.run(client, [_keys("t", "n")[0]], [EXPIRY_MS, entries[0]])
    assert client.pttl(_keys("t", "n")[0]) <= LOW


def test_requeued_dead_letters_give_a_normal_list_its_grace(redis_server) -> None:
    """Issue 17's requeue (and reclaim, through the same ``list_ttl``) sets the TTL a
    send would: issue 15's grace for a normal channel, expiry + 1 s for a ``?`` one and
    for doorbells."""
    client = redis.Redis(port=redis_server.port)
    for name, wanted in (("n", GRACE_TTL), ("s?x", EXPIRY_MS + 1000)):
        dead, data = f"t:{{{name}}}:dead", _keys("t", name)[0]
        client.rpush(dead, b"00000000000011:0000000000001Mletter")
        assert REQUEUE.run(client, [dead, data, data + ":bell"], [EXPIRY_MS]) == 1
        assert wanted - 2000 < client.pttl(data) <= wanted
        assert EXPIRY_MS < client.pttl(data + ":bell") <= EXPIRY_MS + 1000
