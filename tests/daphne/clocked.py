"""Daphne driven over a StringTransport and a fake clock (shared by the socket-free tests).

`HTTPFactory.reactor` is what daphne's timers use, so assigning a
`twisted.internet.task.Clock` makes timeouts testable without waiting.
"""

from __future__ import annotations

from twisted.internet import task, testing

from channels.layers.inmemory import ChannelLayer
from daphne.http_protocol import HTTPFactory
from daphne.tests import factories


def connect(layer: ChannelLayer, **options) -> tuple[HTTPFactory, object, object, task.Clock]:
    clock = task.Clock()
    factory = HTTPFactory(layer, send_channel="test!", **options)
    factory.reactor = clock
    protocol = factory.buildProtocol(("127.0.0.1", 0))
    transport = testing.StringTransport()
    protocol.makeConnection(transport)
    return factory, protocol, transport, clock


def websocket_connect(layer: ChannelLayer, **options):
    factory, protocol, transport, clock = connect(layer, **options)
    protocol.dataReceived(factories.build_websocket_upgrade("/ws/", [], []))
    _, message = layer.receive(["websocket.connect"])
    return factory, protocol, transport, clock, message


def open_socket(layer: ChannelLayer):
    factory, protocol, transport, clock, message = websocket_connect(layer)
    factory.dispatch_reply(message["reply_channel"], {"accept": True})
    assert transport.value().startswith(b"HTTP/1.1 101")
    transport.clear()
    return factory, transport, message["reply_channel"]
