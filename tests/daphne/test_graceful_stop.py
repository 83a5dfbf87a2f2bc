"""SIGTERM/SIGINT graceful stop of a daphne subprocess (D-17)."""

from __future__ import annotations

import http.client
import signal
import socket
import struct
import threading

import pytest
import websocket

from tests.daphne.process import DaphneProcess


def start_slow_request(port: int, seconds: float) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("GET", f"/slow/{seconds}/")
            response = connection.getresponse()
            result["status"] = response.status
            result["connection"] = response.getheader("Connection")
            result["retry_after"] = response.getheader("Retry-After")
            result["body"] = response.read()
        except (OSError, http.client.HTTPException) as error:
            result["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.slow
def test_sigterm_drains_http_closes_websockets_1001_and_exits():
    with DaphneProcess("-p", "0", "--graceful-timeout", "20") as daphne:
        ws = websocket.create_connection(f"ws://127.0.0.1:{daphne.port}/ws/", timeout=10)
        try:
            ws.send("before")
            assert ws.recv() == "before"
            thread, result = start_slow_request(daphne.port, 1.5)
            daphne.wait_for("SLOW STARTED")
            daphne.signal(signal.SIGTERM)
            opcode, frame = ws.recv_data_frame(True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE
            assert struct.unpack("!H", frame.data[:2])[0] == 1001
            daphne.wait_for("Stopping: draining 1 HTTP requests")
            # Listening stopped: new connections are refused.
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", daphne.port), timeout=5).close()
            thread.join(timeout=30)
            assert result.get("status") == 200, result
            assert result["body"] == b"slow done"
            assert result["connection"] == "close"
            assert daphne.wait(timeout=20) == 0
        finally:
            ws.shutdown()


@pytest.mark.slow
def test_graceful_timeout_answers_waiting_requests_503():
    """D-17 step 4, issue 14: a request the application did not answer in time gets
    503 (with Retry-After and Connection: close) and one INFO line, not a dropped
    connection."""
    with DaphneProcess("-p", "0", "--graceful-timeout", "1") as daphne:
        thread, result = start_slow_request(daphne.port, 30)
        daphne.wait_for("SLOW STARTED")
        daphne.signal(signal.SIGINT)
        daphne.wait_for("Stopping: answered 1 HTTP request still waiting for the application")
        assert daphne.wait(timeout=20) == 0
        thread.join(timeout=10)
        assert result.get("status") == 503, result
        assert b"restarting" in result["body"]
        assert result["connection"] == "close"
        assert result["retry_after"] == "5"
        assert not [line for line in daphne.output if " ERROR " in line or " WARNING " in line]


@pytest.mark.slow
def test_second_signal_stops_at_once():
    with DaphneProcess("-p", "0", "--graceful-timeout", "60") as daphne:
        thread, result = start_slow_request(daphne.port, 30)
        daphne.wait_for("SLOW STARTED")
        daphne.signal(signal.SIGTERM)
        daphne.wait_for("Stopping: draining 1 HTTP requests")
        daphne.signal(signal.SIGTERM)
        assert daphne.wait(timeout=15) == 0
        thread.join(timeout=10)
        assert result.get("status") == 503, result  # step 4, reached at once
