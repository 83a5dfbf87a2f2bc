"""HTTP timeouts and body pumping by a fake clock (D-24, D-63, D-64, A-89)."""

from __future__ import annotations

from twisted.internet import error
from twisted.python import failure

from channels.layers.inmemory import ChannelLayer
from tests.daphne.clocked import connect


def test_http_timeout_by_clock():
    """D-24: 503 once `timeout` seconds pass without a response start."""
    layer = ChannelLayer()
    factory, protocol, transport, clock = connect(layer, timeout=30)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(29)
    assert transport.value() == b""
    clock.advance(2)
    assert transport.value().startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b"Worker server failed to respond within time limit." in transport.value()


def test_started_response_is_not_timed_out():
    layer = ChannelLayer()
    factory, protocol, transport, clock = connect(layer, timeout=30)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    _, message = layer.receive(["http.request"])
    factory.dispatch_reply(message["reply_channel"], {"status": 200, "more_content": True})
    clock.advance(100)
    assert b"503" not in transport.value()


def test_head_timeout_by_clock():
    """D-64: 408 for a head trickling in for 60 s, even while bytes keep coming."""
    layer = ChannelLayer()
    factory, protocol, transport, clock = connect(layer)
    for _ in range(59):
        protocol.dataReceived(b"X")
        clock.advance(1)
    assert transport.value() == b""
    clock.advance(1.5)
    assert transport.value().startswith(b"HTTP/1.1 408")
    assert transport.disconnecting


def test_head_timeout_between_keep_alive_requests_by_clock():
    """D-64 on a keep-alive connection: each wait for a head has its own `head_timeout`,
    counted from the previous response, though the timer is not re-armed per request
    (issue 20)."""
    layer = ChannelLayer()
    factory, protocol, transport, clock = connect(layer)
    for _ in range(3):
        clock.advance(25)  # a head 25 s after the last response: in time
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _, message = layer.receive(["http.request"])
        clock.advance(10)  # the application takes 10 s
        factory.dispatch_reply(message["reply_channel"], {"status": 200, "content": b"ok"})
        assert not transport.disconnecting
    transport.clear()
    protocol.dataReceived(b"GET")  # part of a head, then nothing
    clock.advance(59.5)
    assert transport.value() == b"" and not transport.disconnecting
    clock.advance(0.5)  # 60 s after the last response, not after the first timer
    assert transport.value().startswith(b"HTTP/1.1 408")
    assert transport.disconnecting


def test_large_body_chunks_retried_and_client_gone_chunk():
    """D-63: chunks wait for room (timer backoff); a client leaving sends {"closed": True}."""
    layer = ChannelLayer(channel_capacity={"http.request.body*": 1})
    factory, protocol, transport, clock = connect(layer)
    body = b"a" * (1024 * 1024) + b"b" * (1024 * 1024) + b"c" * 10
    protocol.dataReceived(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    _, message = layer.receive(["http.request"])
    assert message["body"] == b"a" * (1024 * 1024)
    body_channel = message["body_channel"]
    _, first = layer.receive([body_channel])
    assert first == {"content": b"b" * (1024 * 1024), "more_content": True}
    assert layer.receive([body_channel]) == (None, None)  # second chunk waits for room
    clock.advance(0.01)
    _, second = layer.receive([body_channel])
    assert second == {"content": b"c" * 10, "more_content": False}
    protocol.connectionLost(failure.Failure(error.ConnectionDone()))  # frees the spill file

    # A client that leaves mid-body: the consumer is told once.
    factory, protocol, transport, clock = connect(layer)
    protocol.dataReceived(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    _, message = layer.receive(["http.request"])
    layer.receive([message["body_channel"]])  # first chunk read; second is pending
    protocol.connectionLost(failure.Failure(error.ConnectionDone()))
    assert layer.receive([message["body_channel"]]) == (message["body_channel"], {"closed": True})
    clock.advance(1)
    assert layer.receive([message["body_channel"]]) == (None, None)


def test_answered_request_sends_no_more_body_chunks():
    """Issue 15 (item 5), D-63: a response before the body was read (the worker refused
    it) stops the chunks: nothing more is queued on the body channel."""
    layer = ChannelLayer(channel_capacity={"http.request.body*": 1})
    factory, protocol, transport, clock = connect(layer)
    body = b"a" * (1024 * 1024) + b"b" * (1024 * 1024) + b"c" * (1024 * 1024)
    protocol.dataReceived(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    _, message = layer.receive(["http.request"])
    body_channel = message["body_channel"]
    factory.dispatch_reply(message["reply_channel"], {"status": 400, "content": b"too big"})
    assert transport.value().startswith(b"HTTP/1.1 400")
    _, first = layer.receive([body_channel])  # sent before the answer
    assert first["more_content"] is True
    clock.advance(1)  # the pump would have retried the next chunk by now
    assert layer.receive([body_channel]) == (None, None)
    protocol.connectionLost(failure.Failure(error.ConnectionDone()))


def test_stalled_request_body_gets_408():
    """A body that stops arriving for body_idle_timeout → 408; a trickling one is fine
    without a total deadline (http_body_timeout=0; issue 15 adds that deadline)."""
    layer = ChannelLayer()
    factory, protocol, transport, clock = connect(layer, http_body_timeout=0)
    protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    for _ in range(5):
        clock.advance(50)
        protocol.dataReceived(b"x" * 10)
    assert transport.value() == b""
    clock.advance(61)
    assert transport.value().startswith(b"HTTP/1.1 408")
    assert layer.receive(["http.request"]) == (None, None)


# -- a full http.request channel (issue 17 item 3, D-31, A-76, A-89) --------------------


def full_request_channel() -> ChannelLayer:
    layer = ChannelLayer(channel_capacity={"http.request": 1})
    layer.send("http.request", {"filler": True})
    return layer


def test_full_request_channel_waits_for_room_then_sends():
    """The request is retried from timers while the channel is full: room freed within
    `http_queue_timeout` delivers it, and nothing is answered meanwhile."""
    layer = full_request_channel()
    factory, protocol, transport, clock = connect(layer)
    factory.config.http_queue_timeout = 3
    protocol.dataReceived(b"GET /queued/ HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(0)
    for _ in range(40):  # 1 ms doubling to 50 ms: over a second of retries
        clock.advance(0.05)
    assert transport.value() == b""
    assert layer.receive(["http.request"])[1] == {"filler": True}  # room, at last
    clock.advance(0.05)
    _, message = layer.receive(["http.request"])
    assert message["path"] == "/queued/"
    factory.dispatch_reply(message["reply_channel"], {"status": 200, "content": b"ok"})
    assert transport.value().startswith(b"HTTP/1.1 200 OK")


def test_full_request_channel_gets_503_with_retry_after_at_the_queue_timeout():
    layer = full_request_channel()
    factory, protocol, transport, clock = connect(layer)
    factory.config.http_queue_timeout = 2
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(0)
    while clock.seconds() < 1.9:
        clock.advance(0.05)
    assert transport.value() == b""
    while clock.seconds() < 2.2:
        clock.advance(0.05)
    written = transport.value()
    assert written.startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b"Request queue full." in written
    assert b"Retry-After: 5" in written and b"Connection: close" in written
    assert layer.receive(["http.request"])[1] == {"filler": True}
    clock.advance(1)
    assert layer.receive(["http.request"]) == (None, None)  # answered: no more retries


def test_queue_timeout_zero_answers_at_once_and_is_capped_by_http_timeout():
    """0 keeps 1.4's immediate 503 (D-31); the wait never outlasts `http_timeout`."""
    layer = full_request_channel()
    factory, protocol, transport, clock = connect(layer)
    factory.config.http_queue_timeout = 0
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(0)
    assert transport.value().startswith(b"HTTP/1.1 503 Service Unavailable")

    layer = full_request_channel()
    factory, protocol, transport, clock = connect(layer, timeout=1)
    factory.config.http_queue_timeout = 60
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    while clock.seconds() < 1.2:
        clock.advance(0.05)
    assert transport.value().startswith(b"HTTP/1.1 503 Service Unavailable")


def test_a_client_leaving_while_its_request_waits_stops_the_retries():
    layer = full_request_channel()
    factory, protocol, transport, clock = connect(layer)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(0.01)
    protocol.connectionLost(failure.Failure(error.ConnectionDone()))
    layer.receive(["http.request"])  # room now: the request must not go out any more
    for _ in range(20):
        clock.advance(0.05)
    assert layer.receive(["http.request"]) == (None, None)
    assert transport.value() == b""
