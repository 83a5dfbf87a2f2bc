"""Redis down under daphne: HTTP gets 503 with Retry-After, and the log gets one ERROR
naming the layer and its Redis (no password) and one INFO when it is back, not a line
per second (issue 14 points 3 and 8; L-62, A-76).
"""

from __future__ import annotations

import http.client
import time

import pytest
import websocket

from asgi_redis import RedisChannelLayer
from daphne.layer_health import describe_layer, redact_url
from tests.daphne.live import Responder, echo_worker
from tests.daphne.test_redis_e2e import DaphneOnRedis


def get(port: int, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def test_redact_url_hides_the_password():
    assert redact_url("redis://:s3cret@10.0.0.1:6379/0") == "redis://:***@10.0.0.1:6379/0"
    assert redact_url("rediss://user:pw@host:1/2") == "rediss://user:***@host:1/2"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


def test_describe_layer_names_class_and_hosts():
    layer = RedisChannelLayer(hosts=["redis://:s3cret@127.0.0.1:1/0"])
    assert (
        describe_layer(layer) == "asgi_redis.core.RedisChannelLayer at redis://:***@127.0.0.1:1/0"
    )


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["twisted-reader", "thread-reader"])
def test_outage_gives_503_and_one_error_then_one_info(tmp_path, redis_server, mode):
    options = ["--force-sync"] if mode == "thread-reader" else []
    worker = Responder(
        RedisChannelLayer(hosts=[redis_server.url]),
        ["http.request", "websocket.connect", "websocket.receive"],
        echo_worker,
        survive_layer_errors=True,
    ).start()
    daphne = DaphneOnRedis(tmp_path, redis_server.url, *options)
    try:
        assert get(daphne.port, "/before/").status == 200
        ws = websocket.create_connection(f"ws://127.0.0.1:{daphne.port}/ws/", timeout=30)
        ws.send("before")
        assert ws.recv() == "before"
        redis_server.kill()
        ws.send("held")  # held by daphne until the layer is back (L-62)
        # Requests during the outage, for long enough that the reader retried often.
        statuses = set()
        retry_after = set()
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            response = get(daphne.port, "/during/")
            statuses.add(response.status)
            retry_after.add(response.getheader("Retry-After"))
        assert statuses == {503}
        assert retry_after == {"5"}
        redis_server.restart()
        deadline = time.monotonic() + 30
        while get(daphne.port, "/after/").status != 200:
            assert time.monotonic() < deadline, "".join(daphne.stderr)
        assert ws.recv() == "held"
        ws.close()
        deadline = time.monotonic() + 30
        while not any("reachable again (trying to receive" in x for x in daphne.stderr):
            assert time.monotonic() < deadline, "".join(daphne.stderr)
            time.sleep(0.05)  # polling the collected output, bounded above
    finally:
        daphne.close()
        worker.stop()
    errors = [line for line in daphne.stderr if " ERROR " in line]
    assert len(errors) == 3, "".join(daphne.stderr)
    for line in errors:
        assert f"RedisChannelLayer at {redis_server.url} is unreachable" in line
    assert {"Error trying to receive messages: " in e for e in errors} == {True, False}
    assert {"Error sending http.request: " in e for e in errors} == {True, False}
    assert {"Error sending WebSocket messages: " in e for e in errors} == {True, False}
    infos = [line for line in daphne.stderr if "is reachable again" in line]
    assert len(infos) == 3, "".join(daphne.stderr)
    # asgi_redis's own one line per shard outage (L-62.4) and one saying the server came
    # back empty (issue 15: its run id changed) are the only warnings.
    warnings = [line for line in daphne.stderr if " WARNING " in line]
    restarts = [line for line in warnings if "restarted (run id changed)" in line]
    assert len(restarts) == 1, warnings
    others = [line for line in warnings if line not in restarts]
    assert len(others) <= 1 and all("Redis shard 0" in x for x in others), warnings


def test_out_of_memory_is_worded_as_a_refusal(caplog):
    """Issue 15 (item 9): a Redis out of memory answers, so daphne's one ERROR says the
    layer refuses (the error names maxmemory), not that it is unreachable; 503 as ever."""
    from asgi_redis import LayerOutOfMemory
    from daphne.layer_health import LayerHealth

    health = LayerHealth(RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"]))
    with caplog.at_level("ERROR", logger="daphne.server"):
        health.failed("sending http.request", LayerOutOfMemory("OOM command not allowed"))
        health.failed("sending http.request", LayerOutOfMemory("OOM command not allowed"))
    (line,) = [record.getMessage() for record in caplog.records]
    assert "OOM command not allowed" in line
    assert "redis://127.0.0.1:1/0 refuses;" in line and "unreachable" not in line
