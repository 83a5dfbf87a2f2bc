"""Redis down under daphne: HTTP gets 503 with Retry-After, and the log gets one ERROR
naming the layer and its Redis (no password) and one INFO when it is back, not a line
per second, nor one per activity (receiving, sending requests, sending WebSocket
messages), nor one each for daphne and the worker threads sharing a runserver process
(issue 14 points 3 and 8; L-62, A-76).
"""

from __future__ import annotations

import http.client
import logging
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


def test_describe_layer_names_the_alias_as_runworker_does():
    """The layer get_channel_layer() returns (what daphne serves) knows its alias, and
    runserver's wrapper is described by the layer it wraps, not as a wrapper."""
    from django.test import override_settings

    from channels.asgi import ChannelLayerManager

    settings = {
        "default": {
            "BACKEND": "asgi_redis.RedisChannelLayer",
            "ROUTING": [],
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/5"]},
        }
    }
    with override_settings(CHANNEL_LAYERS=settings):
        wrapper = ChannelLayerManager()["default"]
    expected = "default (asgi_redis.core.RedisChannelLayer at redis://127.0.0.1:1/5)"
    assert describe_layer(wrapper.channel_layer) == expected
    assert describe_layer(wrapper) == expected


def test_one_error_and_one_info_per_outage_across_activities_and_the_worker(caplog):
    """Receiving, sending requests and sending WebSocket messages all fail in an outage;
    under runserver the worker threads (channels.log.LayerHealth) fail too. The process
    logs one ERROR at the first failure and one INFO at the first success after it."""
    from channels.log import LayerHealth as WorkerHealth
    from daphne.layer_health import LayerHealth

    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"])
    health = LayerHealth(layer)
    worker = WorkerHealth.of(layer)
    error = ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
    with caplog.at_level(logging.DEBUG, logger="daphne.server"):
        health.failed("trying to receive messages", error)
        health.failed("sending http.request", error)
        health.failed("sending WebSocket messages", error)
        assert worker.failed() is False  # reported already: the worker stays quiet
        assert health.down and health.failing("sending http.request")
        health.ok("sending WebSocket messages")
        assert not health.down and not health.failing("sending http.request")
        health.ok("trying to receive messages")
        assert worker.recovered() is False  # reported over already
        # The next outage is reported again, by whoever meets it first.
        assert worker.failed() is True
        health.failed("trying to receive messages", error)
        assert worker.recovered() is True
        health.ok("trying to receive messages")
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.levelname for r in loud] == ["ERROR", "INFO"], [r.getMessage() for r in loud]
    assert loud[0].getMessage().startswith("Error trying to receive messages: Error 111")
    assert "redis://127.0.0.1:1/0 is unreachable" in loud[0].getMessage()
    assert "reachable again (sending WebSocket messages works)" in loud[1].getMessage()


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
        # "before" may come back once more: its send was in flight when Redis went and
        # daphne sends a message whose outcome it never read again (docs/deploying.rst).
        echoes = [ws.recv()]
        if echoes[0] == "before":
            echoes.append(ws.recv())
        assert echoes[-1] == "held", echoes
        ws.close()
        deadline = time.monotonic() + 30
        while not any("reachable again" in x for x in daphne.stderr):
            assert time.monotonic() < deadline, "".join(daphne.stderr)
            time.sleep(0.05)  # polling the collected output, bounded above
    finally:
        daphne.close()
        worker.stop()
    # One ERROR for the outage, whichever activity met it first, and one INFO.
    errors = [line for line in daphne.stderr if " ERROR " in line]
    assert len(errors) == 1, "".join(daphne.stderr)
    assert f"RedisChannelLayer at {redis_server.url} is unreachable" in errors[0]
    infos = [line for line in daphne.stderr if "is reachable again" in line]
    assert len(infos) == 1, "".join(daphne.stderr)
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
