"""`asgi_redis.wire`: packing commands must survive a signal handler that raises.

A worker's SIGTERM while idle raises SystemExit from its handler (C-31); hiredis's C
packer, which ran handlers inside itself, crashed the process with SIGSEGV when that
happened there (seen as exit status -11 in tests/channels/test_runworker.py).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import hiredis
import pytest
import redis
from redis._parsers import _RESP2Parser

from asgi_redis.wire import (
    execute_packed,
    execute_pipeline,
    give_back,
    pack_command,
    read_replies,
    take,
)

ROOT = Path(__file__).resolve().parents[2]

# Raises from a SIGALRM handler every 100 µs while packing: each raise lands inside
# the try (the handler disarms itself), so the script ends with status 0 unless the
# packer crashes the interpreter.
SIGNAL_STORM = """
import signal, sys
sys.path.insert(0, sys.argv[1])
from asgi_redis.wire import (
    execute_packed,
    execute_pipeline,
    give_back,
    pack_command,
    read_replies,
    take,
)

class Stop(Exception):
    pass

armed = False

def handler(signo, frame):
    global armed
    if armed:
        armed = False
        raise Stop

signal.signal(signal.SIGALRM, handler)
args = ("EVALSHA", "a" * 40, 3, "k1", "k2", "k3", b"x" * 100, 1, 2)
stopped = 0
signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)
for _ in range(100_000):
    try:
        armed = True
        pack_command(args)
        armed = False
    except Stop:
        stopped += 1
signal.setitimer(signal.ITIMER_REAL, 0)
print(stopped)
"""


def test_pack_command_encodes_resp_as_hiredis_does() -> None:
    """hiredis's packer (a dependency) as the reference for the bytes."""
    cases = [
        ("GET", "k"),
        ("SET", "k", b"\x00\xff", 5, -3),
        ("SET", "k", b"v\r\n", 12),
        ("BLMPOP", "5.000", 2, "a", "b", "LEFT", "COUNT", 64),
        ("X", "\u00fcn\u00ef", 2**63 - 1),
    ]
    for case in cases:
        assert pack_command(case) == hiredis.pack_command(case)
    assert pack_command(("X", "é")) == b"*2\r\n$1\r\nX\r\n$2\r\n\xc3\xa9\r\n"


def test_a_raising_signal_handler_never_crashes_the_packer() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SIGNAL_STORM, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) > 0  # the handler did interrupt packing


def test_pack_command_packs_repeated_arguments_the_same_as_new_ones() -> None:
    """Issue 20: str and int arguments are packed once and kept; the encoding is RESP
    whether or not an argument was seen before, and bool, float and long strings keep
    their plain encoding."""
    from redis.connection import PythonRespSerializer

    from asgi_redis.wire import pack_command

    def encode(arg: object) -> bytes:
        return arg if isinstance(arg, bytes) else str(arg).encode("utf-8")

    serializer = PythonRespSerializer(6000, encode)
    commands = [
        ("EVALSHA", "a" * 40, 3, "k1", "k2", "k3", 60000, "", -1, b"payload", 100, "é"),
        ("SET", True, 1.5, "x" * 500, 0, b""),
    ]
    for args in commands:
        expected = b"".join(serializer.pack(*args))
        assert pack_command(args) == expected
        assert pack_command(args) == expected  # packed from the kept forms


@pytest.mark.parametrize("protocol,parser", [(2, None), (3, None), (2, "python")])
def test_replies_read_straight_from_hiredis_match_redis_py(redis_server, protocol, parser):
    """Issue 20: `execute_packed` and `execute_pipeline` read replies from the hiredis
    reader directly; what comes back (values, error replies, nil) is what redis-py's
    own reading gives, on RESP2 and RESP3, and an error reply leaves the connection
    usable. A connection with another parser is read through redis-py, alike."""
    options = {"parser_class": _RESP2Parser} if parser else {}
    client = redis.Redis.from_url(redis_server.url, protocol=protocol, **options)
    client.rpush("w.list", b"a", b"b\x00c")
    commands = [
        pack_command(("LRANGE", "w.list", 0, -1)),
        pack_command(("INCR", "w.list")),  # WRONGTYPE: an error reply, as a value
        pack_command(("GET", "w.none")),
        pack_command(("LMPOP", 1, "w.list", "LEFT", "COUNT", 5)),
    ]
    replies = execute_pipeline(client, commands, read_timeout=2.0)
    assert replies[0] == [b"a", b"b\x00c"]
    assert isinstance(replies[1], redis.ResponseError) and "WRONGTYPE" in str(replies[1])
    assert replies[2] is None
    assert replies[3] == [b"w.list", [b"a", b"b\x00c"]]
    with pytest.raises(redis.ResponseError, match="unknown command"):
        execute_packed(client, pack_command(("NOSUCHCOMMAND",)))
    assert execute_packed(client, pack_command(("PING",))) in (b"PONG", "PONG", True)
    assert execute_packed(client, pack_command(("ECHO", b"x" * 100_000))) == b"x" * 100_000


def test_a_server_gone_mid_reply_raises_the_connection_error_and_reconnects(
    redis_server,
) -> None:
    """L-62.2 with the direct reads: a server killed while a command waits raises
    redis-py's `ConnectionError`, the connection is dropped, not reused half-read, and
    the next command after the restart works. A reply that does not come in time raises
    redis-py's `TimeoutError` naming the server."""
    client = redis.Redis.from_url(redis_server.url)
    with pytest.raises(redis.TimeoutError, match=f"{redis_server.port}"):
        execute_packed(client, pack_command(("BLPOP", "w.never", 5)), read_timeout=0.2)
    assert execute_packed(client, pack_command(("PING",))) in (b"PONG", True)
    killer = threading.Timer(0.3, redis_server.kill)
    killer.start()
    try:
        with pytest.raises(redis.ConnectionError):
            execute_pipeline(client, [pack_command(("BLPOP", "w.never", 5))], read_timeout=6)
    finally:
        killer.join()
    redis_server.start()
    assert execute_packed(client, pack_command(("PING",))) in (b"PONG", True)


@pytest.mark.parametrize("parser", [None, "python"])
def test_replies_read_later_come_back_as_the_pipeline_reads_them(redis_server, parser):
    """Issue 20: `read_replies` reads the replies of commands written earlier on a
    connection from `take` (the worker's lookahead), error replies as values."""
    options = {"parser_class": _RESP2Parser} if parser else {}
    client = redis.Redis.from_url(redis_server.url, **options)
    client.rpush("w.later", b"a")
    connection = take(client)
    try:
        connection.send_packed_command(
            (pack_command(("INCR", "w.later")) + pack_command(("LPOP", "w.later")),),
            check_health=False,
        )
        replies = read_replies(connection, 2)
    finally:
        give_back(client, connection)
    assert isinstance(replies[0], redis.ResponseError) and "WRONGTYPE" in str(replies[0])
    assert replies[1] == b"a"
    assert execute_packed(client, pack_command(("PING",))) in (b"PONG", True)
