"""daphne ``--metrics-port`` in a real process (issue 18): served, counted, 503 on
/readyz while draining, closed last; a taken metrics port is one line like the main one's.

`tests.daphne.app` is daphne with an in-memory layer and a worker thread; requests and
scrapes are real HTTP.
"""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from support.redis_harness import free_port
from tests.daphne.process import DaphneProcess
from tests.daphne.test_graceful_stop import start_slow_request
from tests.daphne.test_listen_errors import last_line_is_the_only_error, run_app, taken_port

__all__ = ["taken_port"]  # the fixture, used below

TIMEOUT = 15


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for each in family.samples:
            if each.name == name and each.labels == labels:
                return each.value
    return 0.0


def test_metrics_port_taken_is_one_line_and_exit_1(taken_port):
    result = run_app("-p", "0", "--metrics-port", str(taken_port))
    assert result.returncode == 1, result.stderr
    assert last_line_is_the_only_error(result) == (
        f"daphne: error: cannot serve metrics on 127.0.0.1:{taken_port}: address already in use"
    )


def test_metrics_served_counted_and_readyz_503_while_draining():
    port = free_port()
    metrics = f"http://127.0.0.1:{port}"
    with DaphneProcess("-p", "0", "--metrics-port", str(port), "--graceful-timeout", "10") as app:
        base = f"http://127.0.0.1:{app.port}"
        assert get(f"{metrics}/healthz") == (200, "ok\n")
        assert get(f"{metrics}/readyz") == (200, "ready\n")
        for _ in range(2):
            assert get(f"{base}/")[0] == 200
        status, page = get(f"{metrics}/metrics")
        assert status == 200
        assert sample(page, "daphne_http_responses_total", status_class="2xx") == 2
        assert sample(page, "daphne_http_first_reply_seconds_count") == 2
        assert sample(page, "channels_layer_up", layer="default") == 1
        # A slow request keeps the drain going while /readyz is asked.
        thread, result = start_slow_request(app.port, 3)
        app.wait_for("SLOW STARTED")
        app.signal(signal.SIGTERM)
        deadline = time.monotonic() + TIMEOUT
        while (answer := get(f"{metrics}/readyz"))[0] != 503:
            assert time.monotonic() < deadline, f"/readyz stayed {answer} while draining"
        assert answer == (503, "draining: the server is stopping\n")
        app.wait_for("Stopping: draining 1 HTTP requests")
        thread.join(TIMEOUT)
        assert result.get("status") == 200, result
        assert app.wait(TIMEOUT) == 0
