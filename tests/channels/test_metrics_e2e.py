"""Issue 18 end to end: daphne and runworker with ``--metrics-port`` on a private Redis.

Real processes, real sockets: HTTP requests, a WebSocket echo, a refused WebSocket and
a forced full channel (``http.request`` has capacity 1 and the worker is SIGSTOPped)
are driven through daphne; both metrics endpoints are scraped over HTTP and the
counters must have moved by exactly what was driven. ``/readyz`` is 200, turns 503
while Redis is stopped and 200 again once it is back (every wait bounded).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis as redis_py
import requests
import websocket
from prometheus_client.parser import text_string_to_metric_families

from asgi_redis import RedisChannelLayer
from support.redis_harness import RedisServer, free_port, redis_server_path
from tests.channels import e2e
from tests.examples import processes

pytestmark = [pytest.mark.slow]

TIMEOUT = 15  # seconds, for every client call and every wait
THREADS = 2  # runworker --threads: one endpoint, one registry for both


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` of the endpoint on `port`: (sample name, sorted labels) → value."""
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def eventually(
    check: Callable[[], bool],
    what: str,
    describe: Callable[[], str] = str,
    timeout: float = TIMEOUT,
) -> None:
    """Poll `check` until it holds (bounded): the other process's state is only
    visible by asking it. `describe` says what was seen instead."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}\n{describe()}")
        time.sleep(0.05)


def status(port: int, path: str) -> int:
    try:
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT).status_code
    except requests.ConnectionError:
        return 0


@contextmanager
def stack(redis: RedisServer, tmp_path) -> Iterator[dict]:
    env = e2e.e2e_env(
        tmp_path / "db.sqlite3", redis.url, CHANNELS_E2E_CHANNEL_CAPACITY="http.request=1"
    )
    e2e.prepare_database(env)
    port, daphne_metrics, worker_metrics = free_port(), free_port(), free_port()
    started = []
    try:
        worker = e2e.start_worker(
            env, "--threads", str(THREADS), "--metrics-port", str(worker_metrics)
        )
        started.append(worker)
        daphne_process, daphne_output = processes.start(
            [
                *e2e.DAPHNE,
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "--metrics-port",
                str(daphne_metrics),
                "tests.testproject.e2e_asgi:channel_layer",
            ],
            e2e.REPO,
            env,
        )
        daphne = e2e.Proc(daphne_process, daphne_output)
        started.append(daphne)
        worker.output.wait_for("Listening on channels", timeout=60)
        worker.output.wait_for("Serving metrics on", timeout=60)
        daphne.output.wait_for("Serving metrics on", timeout=60)
        processes.wait_for_port(port, daphne_process, timeout=60, output=daphne_output)
        yield {
            "url": f"http://127.0.0.1:{port}",
            "ws": f"ws://127.0.0.1:{port}",
            "daphne": daphne_metrics,
            "worker": worker_metrics,
            "worker_process": worker.process,
            "outputs": (daphne, worker),
        }
    finally:
        for proc in started:
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGCONT)  # in case a check left it stopped
            proc.stop()


@pytest.fixture
def redis():
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as server:
        yield server


def test_counters_move_by_what_was_driven_and_readyz_follows_redis(redis, tmp_path):
    with stack(redis, tmp_path) as running:
        d_port, w_port = running["daphne"], running["worker"]
        # Liveness and readiness while everything works.
        for port in (d_port, w_port):
            assert status(port, "/healthz") == 200
            assert status(port, "/readyz") == 200

        # -- HTTP: 3 answered by a view, 1 by Django's 404 ------------------------------
        for _ in range(3):
            response = requests.get(f"{running['url']}/hello/", timeout=TIMEOUT)
            assert response.status_code == 200
        assert requests.get(f"{running['url']}/nowhere/", timeout=TIMEOUT).status_code == 404

        # -- WebSocket: one echo through the room group; one refused handshake -------------
        sock = websocket.create_connection(f"{running['ws']}/room/", timeout=TIMEOUT)
        sock.send("hi")
        assert sock.recv() == "hi"
        during = scrape(d_port)
        assert value(during, "daphne_open_connections", protocol="websocket") == 1
        sock.close()
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"{running['ws']}/auth/", timeout=TIMEOUT)
        assert refused.value.status_code == 403

        # -- the worker: a consumer that raises ----------------------------------------------
        RedisChannelLayer(hosts=[redis.url]).send("test.crash", {"n": 1})
        eventually(
            lambda: (
                value(
                    scrape(w_port),
                    "channels_worker_messages_consumed_total",
                    channel="test.crash",
                    outcome="exception",
                )
                == 1
            ),
            "the worker counts the consumer's exception",
            lambda: running["outputs"][1].output.text(),
        )

        # -- a forced full channel: the worker stopped, http.request holds 1 -------------------
        # A stopped worker's pending blocking pops still take one message each from Redis,
        # so requests are sent one at a time until one stays queued: each is either
        # queued or taken by a blocked pop (the blocked client count drops).
        worker_process = running["worker_process"]
        worker_process.send_signal(signal.SIGSTOP)
        client = redis_py.Redis.from_url(redis.url)
        held: list[requests.Response] = []
        waiting: list[threading.Thread] = []

        def depth() -> float:
            return value(
                scrape(d_port),
                "channels_layer_queue_depth",
                layer="default",
                channel="http.request",
            )

        def blocked() -> int:
            return sum("b" in entry["flags"] for entry in client.client_list())

        def hold() -> None:
            held.append(requests.get(f"{running['url']}/hello/", timeout=TIMEOUT * 2))

        try:
            for _ in range(THREADS + 3):
                if depth() == 1:
                    break
                before = blocked()
                waiting.append(threading.Thread(target=hold, daemon=True))
                waiting[-1].start()
                eventually(
                    lambda before=before: depth() == 1 or blocked() < before,
                    "the request is queued or taken by a stopped worker's pop",
                )
            assert depth() == 1
            full = requests.get(f"{running['url']}/hello/", timeout=TIMEOUT)
            assert full.status_code == 503
        finally:
            worker_process.send_signal(signal.SIGCONT)
        for thread in waiting:
            thread.join(TIMEOUT * 2)
        k = len(waiting)
        assert [response.status_code for response in held] == [200] * k

        d = scrape(d_port)
        w = scrape(w_port)
        outputs = "".join(proc.output.text() for proc in running["outputs"])

        # daphne: responses by class, first replies, handshakes, frames, drops, backpressure.
        assert value(d, "daphne_http_responses_total", status_class="2xx") == 3 + k, outputs
        assert value(d, "daphne_http_responses_total", status_class="4xx") == 1
        assert value(d, "daphne_http_responses_total", status_class="5xx") == 1
        # Every answer of the application, not daphne's own 503.
        assert value(d, "daphne_http_first_reply_seconds_count") == 4 + k
        assert value(d, "daphne_websocket_handshakes_total", outcome="accepted") == 1
        assert value(d, "daphne_websocket_handshakes_total", outcome="rejected") == 1
        assert value(d, "daphne_websocket_handshakes_total", outcome="timed_out") == 0
        assert value(d, "daphne_websocket_frames_total", direction="in") == 1
        assert value(d, "daphne_websocket_frames_total", direction="out") == 1
        assert value(d, "daphne_websocket_bytes_total", direction="in") == 2
        assert value(d, "daphne_websocket_bytes_total", direction="out") == 2
        assert (
            value(d, "daphne_messages_dropped_total", channel="http.request", reason="channel_full")
            == 1
        )
        assert value(d, "daphne_backpressure_events_total", event="http_503") == 1
        assert value(d, "daphne_open_connections", protocol="websocket") == 0
        assert value(d, "channels_layer_up", layer="default") == 1

        # The worker: by channel family and outcome, consumers timed, one registry for
        # both threads.
        consumed = "channels_worker_messages_consumed_total"
        assert value(w, consumed, channel="http.request", outcome="ok") == 4 + k, outputs
        assert value(w, consumed, channel="websocket.connect", outcome="ok") == 2
        assert value(w, consumed, channel="websocket.receive", outcome="ok") == 1
        assert value(w, consumed, channel="test.crash", outcome="exception") == 1
        assert value(w, consumed, channel="websocket.connect", outcome="no_route") == 0
        assert value(w, "channels_worker_in_flight") == 0
        timed = {
            dict(labels)["consumer"]: count
            for (name, labels), count in w.items()
            if name == "channels_worker_consumer_seconds_count"
        }
        assert timed.get("tests.testproject.e2e_routing.room_receive") == 1, timed
        assert timed.get("tests.testproject.e2e_routing.crash") == 1, timed
        assert value(w, "channels_layer_up", layer="default") == 1

        # -- readiness follows Redis -----------------------------------------------------------
        redis.stop()
        eventually(lambda: status(d_port, "/readyz") == 503, "daphne /readyz 503 without Redis")
        eventually(lambda: status(w_port, "/readyz") == 503, "worker /readyz 503 without Redis")
        assert status(d_port, "/healthz") == 200 and status(w_port, "/healthz") == 200
        eventually(  # a layer read is reused for a second (LayerCollector.min_interval)
            lambda: value(scrape(d_port), "channels_layer_up", layer="default") == 0,
            "daphne's layer collector reports the layer down",
        )
        redis.start()
        eventually(lambda: status(d_port, "/readyz") == 200, "daphne /readyz 200 again")
        eventually(lambda: status(w_port, "/readyz") == 200, "worker /readyz 200 again")
        assert value(scrape(w_port), "channels_worker_layer_errors_total", operation="receive") >= 1
