"""permessage-deflate (RFC 7692) through daphne and a worker (issue 21 item 1).

The client is the `websockets` library (it implements the extension) or a raw socket,
so the frames on the wire are checked too: RSV1 set and a smaller payload.
"""

from __future__ import annotations

import asyncio
import json
import zlib

import pytest

from channels.layers.inmemory import ChannelLayer
from daphne import ws_deflate
from tests.daphne.live import LiveServer, Responder, echo_worker
from tests.daphne.rawws import RawSocket, frame

ws_client = pytest.importorskip("websockets.asyncio.client", reason="pip install websockets")

CHANNELS = ["websocket.connect", "websocket.receive"]
TIMEOUT = 10
# Repetitive JSON, as a chat or a dashboard sends.
MESSAGE = json.dumps([{"user": "alice", "room": "lobby", "text": "hello"}] * 20)


def serve(**options):
    live = LiveServer(ChannelLayer(), **options).start()
    responder = Responder(live.layer, CHANNELS, echo_worker).start()
    return live, responder


@pytest.fixture
def echo_live():
    live, responder = serve()
    yield live
    responder.stop()
    live.stop()


async def exchange(port: int, messages: list[str], compression: str | None = "deflate"):
    """Send each message and read its echo; returns the negotiated extensions and echoes."""
    url = f"ws://127.0.0.1:{port}/ws/"
    async with ws_client.connect(url, compression=compression, open_timeout=TIMEOUT) as ws:
        echoes = []
        for text in messages:
            await ws.send(text)
            echoes.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
        return ws.response.headers.get("Sec-WebSocket-Extensions"), echoes


def test_offered_deflate_is_negotiated_and_echo_works(echo_live) -> None:
    """A client offering permessage-deflate gets it; messages in both directions are
    compressed, and successive messages (each compressed on its own) decode."""
    messages = [MESSAGE, "short", MESSAGE.replace("alice", "bob"), "é✓"]
    extensions, echoes = asyncio.run(exchange(echo_live.port, messages))
    assert extensions is not None and extensions.startswith("permessage-deflate")
    # Daphne drops its decompressor between messages (ws_deflate).
    assert "client_no_context_takeover" in extensions
    assert echoes == messages


def test_empty_short_and_long_messages_mix_on_one_socket(echo_live) -> None:
    """Stored and deflated messages alternate on one socket whose client keeps its
    window; an empty message is a permessage-deflate message too (RFC 7692 §7.2.3.6)."""
    long = MESSAGE * 3
    messages = ["", "a", long, "", "é" * 600, long.replace("lobby", "hall"), "z"]
    extensions, echoes = asyncio.run(exchange(echo_live.port, messages))
    assert extensions is not None and extensions.startswith("permessage-deflate")
    assert echoes == messages


def test_no_ws_compression_does_not_negotiate() -> None:
    """--no-ws-compression: the offer is declined and messages go uncompressed."""
    live, responder = serve(ws_compression=False)
    try:
        extensions, echoes = asyncio.run(exchange(live.port, [MESSAGE]))
    finally:
        responder.stop()
        live.stop()
    assert extensions is None
    assert echoes == [MESSAGE]


def test_not_offered_not_used(echo_live) -> None:
    extensions, echoes = asyncio.run(exchange(echo_live.port, [MESSAGE], compression=None))
    assert extensions is None and echoes == [MESSAGE]


def test_compressed_frames_shrink_repetitive_json(echo_live) -> None:
    """On the wire: the echo's frame has RSV1 set and its payload is a fraction of the
    text's; each message inflates on its own (no context taken over)."""
    sock = RawSocket(
        echo_live.connect(timeout=TIMEOUT),
        extra=b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    )
    assert b"permessage-deflate" in sock.head
    text = MESSAGE.encode()
    for _ in range(2):
        sock.send(frame(0x1, text))  # sent uncompressed: RSV1 clear is allowed
        opcode, rsv, payload = sock.next_frame()
        assert (opcode, rsv) == (0x1, 0x40)
        assert len(payload) < len(text) / 5
        inflated = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
        assert inflated == text


def test_short_messages_go_out_in_stored_blocks(echo_live) -> None:
    """Under `COMPRESS_THRESHOLD` bytes, deflating costs more CPU on both ends than it
    saves bytes: the message goes in a stored deflate block (RFC 1951 §3.2.4), RSV1 set,
    so every message of the socket is a permessage-deflate one (issue 21: the Autobahn
    case runner expects that)."""
    sock = RawSocket(
        echo_live.connect(timeout=TIMEOUT),
        extra=b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    )
    assert b"permessage-deflate" in sock.head
    inflater = zlib.decompressobj(-15)  # the client keeps its window (context takeover)
    for short in (b'{"n": 1, "text": "hello"}', "é✓".encode(), b"x" * 1023):
        assert len(short) < ws_deflate.COMPRESS_THRESHOLD
        sock.send(frame(0x1, short))
        opcode, rsv, payload = sock.next_frame()
        assert (opcode, rsv) == (0x1, 0x40)
        header = bytes([0, len(short) & 0xFF, len(short) >> 8])
        assert payload[:3] == header and payload[5:-1] == short  # stored, not deflated
        assert payload[-1:] == ws_deflate.STORED_END
        assert inflater.decompress(payload + b"\x00\x00\xff\xff") == short


def test_stored_blocks_split_at_the_block_limit() -> None:
    """A stored block holds at most 65,535 bytes; longer data is split and still inflates."""
    data = bytes(range(256)) * 600  # 153,600 bytes
    blocks = ws_deflate.stored_blocks(data)
    assert len(blocks) == len(data) + 3 * 5
    end = ws_deflate.STORED_END + b"\x00\x00\xff\xff"
    assert zlib.decompressobj(-15).decompress(blocks + end) == data
    assert zlib.decompressobj(-15).decompress(end) == b""  # an empty message


def test_compressed_client_frames_are_inflated(echo_live) -> None:
    """A compressed client frame (RSV1) reaches the worker as its text."""
    sock = RawSocket(
        echo_live.connect(timeout=TIMEOUT),
        extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n",
    )
    text = MESSAGE.encode()
    for _ in range(2):  # a fresh compressor each: client_no_context_takeover
        compressor = zlib.compressobj(wbits=-15)
        payload = (compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        sock.send(frame(0x1, payload, rsv=0x40))
        opcode, rsv, echoed = sock.next_frame()
        assert zlib.decompressobj(-15).decompress(echoed + b"\x00\x00\xff\xff") == text


def test_accept_honours_the_clients_server_window() -> None:
    """RFC 7692 §7.1.2.1: a client's server_max_window_bits bounds the compressor."""
    from autobahn.websocket.compress import PerMessageDeflateOffer

    offer = PerMessageDeflateOffer.parse({"server_max_window_bits": ["10"]})
    accept = ws_deflate.accept_offers([offer], 0)
    assert "server_max_window_bits=10" in accept.get_extension_string()
    pmce = ws_deflate.BoundedDeflate.create_from_offer_accept(True, accept)
    assert pmce.server_max_window_bits == 10
    pmce.start_compress_message()
    data = pmce.compress_message_data(b"x" * 5000) + pmce.end_compress_message()
    assert zlib.decompressobj(-10).decompress(data + b"\x00\x00\xff\xff") == b"x" * 5000
    assert ws_deflate.accept_offers([], 0) is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [([], True), (["--ws-compression"], True), (["--no-ws-compression"], False)],
)
def test_cli_switch(args, expected) -> None:
    from daphne.cli import CommandLineInterface

    cli = CommandLineInterface()
    config = cli._config(cli.parser.parse_args([*args, "daphne.tests.asgi:channel_layer"]))
    assert config.ws_compression is expected


# -- through the daphne command, Redis and a worker in another thread (issue 21) ----------


@pytest.fixture
def redis_stack(tmp_path, redis_server):
    from asgi_redis import RedisChannelLayer
    from tests.daphne.test_redis_e2e import DaphneOnRedis

    worker = Responder(
        RedisChannelLayer(hosts=[redis_server.url]),
        CHANNELS,
        echo_worker,
        survive_layer_errors=True,
    ).start()
    started = []

    def start(*options: str):
        daphne = DaphneOnRedis(tmp_path, redis_server.url, *options)
        started.append(daphne)
        return daphne

    yield start
    for daphne in started:
        daphne.close()
    worker.stop()


@pytest.mark.redis
def test_compression_through_redis_and_the_cli_switch(redis_stack) -> None:
    daphne = redis_stack()
    messages = [MESSAGE, "two", MESSAGE]
    extensions, echoes = asyncio.run(exchange(daphne.port, messages))
    assert extensions.startswith("permessage-deflate") and echoes == messages
    daphne.close()
    daphne = redis_stack("--no-ws-compression")
    extensions, echoes = asyncio.run(exchange(daphne.port, messages))
    assert extensions is None and echoes == messages


@pytest.mark.redis
def test_strict_close_through_redis(redis_stack) -> None:
    """Issue 21's case: the reply to a valid message crosses Redis while daphne parses
    the invalid frame after it; the reply still precedes the 1007 close."""
    import socket

    daphne = redis_stack()
    sock = RawSocket(socket.create_connection(("127.0.0.1", daphne.port), timeout=TIMEOUT))
    try:
        sock.send(frame(0x1, b"hello") + frame(0x1, b"\xff\xfe"))
        frames = sock.frames_until_close()
    finally:
        sock.sock.close()
    assert [(opcode, payload) for opcode, _, payload in frames[:-1]] == [(0x1, b"hello")]
    assert frames[-1][0] == 0x8 and int.from_bytes(frames[-1][2][:2], "big") == 1007
