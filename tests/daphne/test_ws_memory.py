"""What an open WebSocket keeps (issue 20 item 2, W5: daphne memory per idle socket).

Once a socket is open, the opening handshake's state is released (`daphne.ws_memory`),
its HTTP channel and upgrade request are freed, and the attributes every socket holds
alike live on the class; a socket of another factory keeps its own options.
"""

from __future__ import annotations

import gc
import struct
import sys

import websocket

from channels.layers.inmemory import ChannelLayer
from daphne import ws_memory
from daphne.http_channel import HTTPChannel, OpenConnection
from tests.daphne.live import LiveServer, Responder, echo_worker, wait_until

CHANNELS = ["websocket.connect", "websocket.receive"]


def open_protocols(live: LiveServer) -> list:
    return live.call(lambda: list(live.factory.reply_protocols.values()))


def test_an_open_socket_keeps_no_handshake_state_and_a_small_dict() -> None:
    layer = ChannelLayer()
    responder = Responder(layer, CHANNELS, echo_worker).start()
    try:
        with LiveServer(layer) as live:
            ws = websocket.create_connection(live.url("/ws/?a=1", "ws"), timeout=10)
            ws.send("hello")
            assert ws.recv() == "hello"
            [protocol] = open_protocols(live)
            attributes = protocol.__dict__
            assert not set(ws_memory.HANDSHAKE_ONLY) & set(attributes)
            assert protocol.request.path == "/ws/"  # what the access log reads
            # 30-odd attributes once a message went both ways, of ~100 before.
            assert len(attributes) <= 42, sorted(attributes)
            assert sys.getsizeof(attributes) < 1500, sorted(attributes)
            assert isinstance(protocol._http_channel, OpenConnection)
            channels = [
                o for o in gc.get_objects() if type(o) is HTTPChannel and o.factory is live.factory
            ]
            assert channels == []
            assert live.call(lambda: live.factory.open_connections) == 1
            ws.send("again")  # still served after the release
            assert ws.recv() == "again"
            ws.close()
    finally:
        responder.stop()


def test_each_factory_keeps_its_own_options() -> None:
    """Options moved to the class by one factory's sockets do not reach another's:
    a later server with a 1 KB message limit still closes with 1009 (D-65)."""
    for limit in (1048576, 1024):
        layer = ChannelLayer()
        responder = Responder(layer, CHANNELS, echo_worker).start()
        try:
            with LiveServer(layer, websocket_max_message_size=limit) as live:
                ws = websocket.create_connection(live.url("/ws/", "ws"), timeout=10)
                ws.send("x" * 1000)
                assert ws.recv() == "x" * 1000
                ws.send("y" * 2000)
                opcode, frame = ws.recv_data_frame(True)
                if limit == 1024:
                    assert opcode == websocket.ABNF.OPCODE_CLOSE
                    assert struct.unpack("!H", frame.data[:2])[0] == 1009
                else:
                    assert (opcode, frame.data) == (websocket.ABNF.OPCODE_TEXT, b"y" * 2000)
                ws.shutdown()
        finally:
            responder.stop()


def test_the_connection_count_is_released_once() -> None:
    """The count handle an open socket keeps uncounts its connection exactly once."""
    layer = ChannelLayer()
    responder = Responder(layer, CHANNELS, echo_worker).start()
    try:
        with LiveServer(layer) as live:
            sockets = [
                websocket.create_connection(live.url("/ws/", "ws"), timeout=10) for _ in range(3)
            ]
            for ws in sockets:
                ws.send("n")
                assert ws.recv() == "n"
            assert live.call(lambda: live.factory.open_connections) == 3
            for ws in sockets:
                ws.close()

            def counted() -> int:
                return live.call(lambda: live.factory.open_connections)

            assert wait_until(lambda: counted() == 0)
            OpenConnection(None, "websocket").released()  # not counted: nothing to undo
            assert counted() == 0
    finally:
        responder.stop()
