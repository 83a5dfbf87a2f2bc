"""``http.disconnect`` is only sent when a worker routes it (issue 14 point 3; A-82,
D-37, D-54).

Workers announce the channels they listen on through the layer; daphne skips
``http.disconnect`` once workers have announced and none routes it, and sends it as
before when nobody announced (the in-memory test suites of 1.x rely on that, D-54).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from twisted.internet import testing

from channels import route
from channels.announce import ChannelAnnouncer
from channels.asgi import ChannelLayerWrapper
from channels.layers.inmemory import ChannelLayer
from daphne.http_protocol import HTTPFactory
from daphne.routed import RoutedChannels
from tests.daphne.test_redis_e2e import DaphneOnRedis


def request_then_response(layer: ChannelLayer, factory: HTTPFactory) -> None:
    """One GET through daphne's protocol on a StringTransport, answered 200 (D-53/D-54)."""
    proto = factory.buildProtocol(("127.0.0.1", 0))
    proto.makeConnection(testing.StringTransport())
    proto.dataReceived(b"GET /te%20st/ HTTP/1.1\r\nHost: x\r\n\r\n")
    _, message = layer.receive(["http.request"])
    factory.dispatch_reply(message["reply_channel"], {"status": 200, "content": b"ok"})


def test_no_announcement_sends_http_disconnect_as_before():
    """D-54: no worker announced (a 1.x test suite on the in-memory layer)."""
    layer = ChannelLayer()
    factory = HTTPFactory(layer, send_channel="test!")
    factory.routed.update(layer.announced_channels())
    request_then_response(layer, factory)
    assert layer.receive(["http.disconnect"])[1]["path"] == "/te st/"


def test_workers_without_http_disconnect_route_get_none():
    layer = ChannelLayer()
    layer.announce_channels("worker-1", ["http.request", "websocket.connect"], 60)
    factory = HTTPFactory(layer, send_channel="test!")
    factory.routed.update(layer.announced_channels())
    request_then_response(layer, factory)
    assert layer.receive(["http.disconnect"]) == (None, None)


def test_a_worker_routing_http_disconnect_gets_it():
    layer = ChannelLayer()
    layer.announce_channels("worker-1", ["http.request"], 60)
    layer.announce_channels("worker-2", ["http.disconnect"], 60)
    factory = HTTPFactory(layer, send_channel="test!")
    factory.routed.update(layer.announced_channels())
    request_then_response(layer, factory)
    assert layer.receive(["http.disconnect"])[1]["path"] == "/te st/"


def test_announcements_expire_and_can_be_withdrawn():
    layer = ChannelLayer()
    layer.announce_channels("gone", ["http.request"], 0.01)
    layer.announce_channels("here", ["websocket.connect"], 60)
    deadline = time.monotonic() + 5
    while layer.announced_channels() != frozenset({"websocket.connect"}):
        assert time.monotonic() < deadline
        time.sleep(0.01)  # polling the expiry of a 10 ms announcement, bounded
    layer.announce_channels("here", [], 60)
    assert layer.announced_channels() is None
    assert RoutedChannels(layer).http_disconnect  # with nothing known: send


def wait_for(predicate, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)  # polling a layer the worker thread updates, bounded


@contextmanager
def running_worker(layer, routes) -> Iterator[None]:
    from channels.worker import Worker

    worker = Worker(ChannelLayerWrapper(layer, "default", routes), signal_handlers=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive()


def test_worker_announces_its_channels_while_it_runs():
    layer = ChannelLayer()
    layer.blocking_timeout = 0.1  # the stopped worker leaves its receive soon
    with running_worker(layer, [route("http.request", lambda message: None)]):
        wait_for(lambda: layer.announced_channels() == frozenset({"http.request"}))
    # Withdrawn when the last worker of the process stopped.
    wait_for(lambda: layer.announced_channels() is None)


def reply_ok(message):
    message.reply_channel.send({"status": 200, "content": b"ok"})


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("routes_disconnect", [False, True], ids=["unrouted", "routed"])
def test_daphne_on_redis_follows_the_workers_routing(tmp_path, redis_server, routes_disconnect):
    from asgi_redis import RedisChannelLayer

    disconnects = []
    routes = [route("http.request", reply_ok)]
    if routes_disconnect:
        routes.append(route("http.disconnect", lambda message: disconnects.append(message)))
    layer = RedisChannelLayer(hosts=[redis_server.url])
    layer.blpop_timeout = 1
    client = redis.Redis.from_url(redis_server.url)
    daphne = DaphneOnRedis(tmp_path, redis_server.url)
    try:
        with running_worker(layer, routes):
            wait_for(lambda: layer.announced_channels() is not None)

            def get(path: str) -> int:
                connection = http.client.HTTPConnection("127.0.0.1", daphne.port, timeout=20)
                try:
                    connection.request("GET", path)
                    response = connection.getresponse()
                    response.read()
                    return response.status
                finally:
                    connection.close()

            if routes_disconnect:
                for index in range(20):
                    assert get(f"/r/{index}/") == 200
                wait_for(lambda: len(disconnects) == 20)
                assert {m["path"] for m in disconnects} == {f"/r/{i}/" for i in range(20)}
            else:
                # daphne reads the announcements every few seconds: once a request
                # leaves no http.disconnect behind, none does.
                def quiet() -> bool:
                    client.delete("asgi:{http.disconnect}")
                    assert get("/probe/") == 200
                    # A response reaches the client as soon as it is written (issue 20),
                    # before the outbox's next flush: the first probe's http.disconnect,
                    # if sent, is stored by the time the second probe is answered.
                    assert get("/probe/") == 200
                    return client.llen("asgi:{http.disconnect}") == 0

                wait_for(quiet, timeout=30)
                for index in range(150):  # more than the channel's capacity (100)
                    assert get(f"/r/{index}/") == 200
                assert client.llen("asgi:{http.disconnect}") == 0
    finally:
        daphne.close()
        client.close()
    assert not [line for line in daphne.stderr if " WARNING " in line or " ERROR " in line]


def test_stopped_workers_leave_no_announcer_behind():
    layer = ChannelLayer()
    layer.blocking_timeout = 0.1
    with running_worker(layer, [route("http.request", lambda message: None)]):
        wait_for(lambda: layer.announced_channels() is not None)
        assert ChannelAnnouncer.for_layer(layer) is ChannelAnnouncer.for_layer(layer)
    wait_for(lambda: id(layer) not in ChannelAnnouncer._registry)
    assert layer.announced_channels() is None
