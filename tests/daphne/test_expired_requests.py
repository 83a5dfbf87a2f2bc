"""An ``http.request`` that expires unread is answered 503 at once (issue 15 item 6).

daphne runs in this process on asgi_redis with a private redis-server; the layer's
expiry is 2 s. With no worker, the request's message expires unread (A-27) and the
client gets 503 with Retry-After shortly after the expiry instead of after the HTTP
timeout (D-24), counted and logged. A request a worker did receive keeps its HTTP
timeout: a slow view is not cut at the layer's expiry.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time

import pytest

from asgi_redis import RedisChannelLayer
from tests.daphne.live import LiveServer, Responder

pytestmark = pytest.mark.redis

EXPIRY = 2
HTTP_TIMEOUT = 6


def get(port: int, timeout: float = 20) -> tuple[int, dict[str, str], bytes, float]:
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/slow/")
        response = connection.getresponse()
        body = response.read()
        return response.status, dict(response.getheaders()), body, time.monotonic() - began
    finally:
        connection.close()


def test_request_no_worker_takes_gets_503_after_the_layer_expiry(redis_server, caplog):
    layer = RedisChannelLayer(hosts=[redis_server.url], expiry=EXPIRY)
    with (
        caplog.at_level(logging.WARNING, logger="daphne.server"),
        LiveServer(layer, http_timeout=30) as live,
    ):
        status, headers, body, took = get(live.port)
        total = live.call(lambda: live.factory.expired_requests.total)
    assert status == 503
    assert headers.get("Retry-After") == "5"
    assert b"expiry" in body
    assert EXPIRY <= took < EXPIRY + 4, took  # not the 30 s HTTP timeout
    assert total == 1
    lines = [r.getMessage() for r in caplog.records if "expired unread" in r.getMessage()]
    assert lines == [
        "1 HTTP request expired unread on http.request (no worker took it within the "
        "channel layer's expiry): answered 503"
    ]


def test_requests_a_lagging_worker_drops_as_expired_get_503_at_their_expiry(
    redis_server,
):
    """A backlog: one worker taking 1.5 s per request, eight requests at once, expiry
    6 s. The worker's receive drops the requests it reaches after their expiry; their
    clients get 503 about then, not at the 30 s HTTP timeout. The first ones get 200."""
    expiry, pause = 6, threading.Event()

    def slow_view(layer, _channel, message):
        pause.wait(1.5)  # a view's work
        layer.send(message["reply_channel"], {"status": 200, "content": b"done"})

    worker_layer = RedisChannelLayer(hosts=[redis_server.url], expiry=expiry)
    worker = Responder(worker_layer, ["http.request"], slow_view).start()
    results: dict[int, tuple[int, dict[str, str], bytes, float]] = {}
    try:
        with LiveServer(
            RedisChannelLayer(hosts=[redis_server.url], expiry=expiry), http_timeout=30
        ) as live:
            clients = []
            for index in range(8):
                client = threading.Thread(
                    target=lambda i=index: results.__setitem__(i, get(live.port, timeout=40))
                )
                client.start()
                clients.append(client)
                pause.wait(0.02)  # in this order into the queue
            for client in clients:
                client.join(45)
    finally:
        worker.stop()
    assert len(results) == 8
    assert [results[i][0] for i in range(3)] == [200, 200, 200]
    refused = [result for result in results.values() if result[0] == 503]
    assert len(refused) >= 2, results
    assert all(b"expiry" in body and took < expiry + 5 for _, _, body, took in refused)
    assert all(result[3] < 20 for result in results.values()), results


def test_request_a_worker_received_keeps_its_http_timeout(redis_server):
    """A worker took the message and is still busy: the HTTP timeout applies (D-24)."""
    layer = RedisChannelLayer(hosts=[redis_server.url], expiry=EXPIRY)
    taken: list[str] = []
    worker = Responder(
        RedisChannelLayer(hosts=[redis_server.url], expiry=EXPIRY),
        ["http.request"],
        lambda _layer, _channel, message: taken.append(message["reply_channel"]),
    ).start()
    try:
        with LiveServer(layer, http_timeout=HTTP_TIMEOUT) as live:
            status, _, body, took = get(live.port)
            total = live.call(lambda: live.factory.expired_requests.total)
    finally:
        worker.stop()
    assert len(taken) == 1
    assert status == 503 and b"failed to respond within time limit" in body
    assert took >= HTTP_TIMEOUT - 0.5, took
    assert total == 0


class FakeRequest:
    def __init__(self, disconnected: bool = False) -> None:
        self._disconnected = disconnected
        self.answered = False

    def waiting_for_response(self) -> bool:
        return not self.answered

    def expired_in_layer(self) -> None:
        self.answered = True


class FakeMetrics:
    def __init__(self) -> None:
        self.drops: list[tuple[str, str, int]] = []

    def dropped(self, channel: str, reason: str, count: int = 1) -> None:
        self.drops.append((channel, reason, count))


def test_only_requests_older_than_the_oldest_waiting_message_are_answered(caplog):
    """The read's verdict (no Redis): a request whose message is at least as old as the
    oldest one still waiting was never received; a younger head means a worker took it;
    a client gone during the read gets nothing. Lines merge; a timer flushes the rest."""
    from types import SimpleNamespace

    from twisted.internet.task import Clock

    from daphne.expired_requests import ExpiredRequests

    clock = Clock()
    factory = SimpleNamespace(reactor=clock, metrics=FakeMetrics())
    watch = ExpiredRequests(factory)
    never, taken, gone = FakeRequest(), FakeRequest(), FakeRequest(disconnected=True)
    clock.advance(100)
    with caplog.at_level(logging.WARNING, logger="daphne.server"):
        # sent 61 s and 61 s ago; the oldest waiting message is 61 s old
        watch._answer({"messages_max_age": 61}, {never: 39.0, gone: 39.0}, 100.0)
        # sent 61 s ago, but the oldest waiting message is 20 s old: a worker took it
        watch._answer({"messages_max_age": 20}, {taken: 39.0}, 100.0)
        later = [FakeRequest(), FakeRequest()]
        watch._answer({"messages_max_age": 70}, dict.fromkeys(later, 31.0), 101.0)
        assert len([r for r in caplog.records if "expired unread" in r.getMessage()]) == 1
        clock.advance(ExpiredRequests.interval)
    assert never.answered and all(r.answered for r in later)
    assert not taken.answered and not gone.answered
    assert factory.metrics.drops == [("http.request", "expired", 1), ("http.request", "expired", 2)]
    assert watch.total == 3
    lines = [r.getMessage() for r in caplog.records if "expired unread" in r.getMessage()]
    assert [line.split(" expired")[0] for line in lines] == ["1 HTTP request", "2 HTTP requests"]
