"""SIGTERM/SIGINT graceful stop of a daphne subprocess (D-17, issue 17 item 4).

WebSockets close with 1012 (service restart) in batches spread over
``--websocket-drain-time``, a deliberate deviation from D-17's "1001 at once"
(docs/differences.rst).
"""

from __future__ import annotations

import http.client
import signal
import socket
import struct
import threading
import time

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
def test_sigterm_drains_http_closes_websockets_1012_and_exits():
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
            assert struct.unpack("!H", frame.data[:2])[0] == 1012
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


def watch_close(ws: websocket.WebSocket, closes: list, index: int) -> None:
    """Read `ws` until its close frame; record (monotonic time, close code) at `index`.
    Echo frames sent meanwhile are read over; websocket-client answers the close."""
    try:
        while True:
            opcode, frame = ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                closes[index] = (time.monotonic(), struct.unpack("!H", frame.data[:2])[0])
                return
    except (OSError, websocket.WebSocketException) as error:
        closes[index] = (time.monotonic(), error)


@pytest.mark.slow
def test_sigterm_closes_50_websockets_1012_in_batches_over_the_drain_time():
    """Issue 17 item 4: closes arrive with 1012, spread over --websocket-drain-time (the
    first and last at least a third of it apart, as measured by the clients); each socket
    sends its websocket.disconnect with 1012; HTTP in flight completes; the process
    exits within --graceful-timeout."""
    count, drain_time, graceful = 50, 3, 8
    args = ("-p", "0", "--graceful-timeout", str(graceful))
    with DaphneProcess(*args, "--websocket-drain-time", str(drain_time)) as daphne:
        sockets = []
        try:
            for index in range(count):
                ws = websocket.create_connection(f"ws://127.0.0.1:{daphne.port}/ws/", timeout=30)
                sockets.append(ws)
                ws.send(f"hello {index}")
                assert ws.recv() == f"hello {index}"
            closes: list = [None] * count
            watchers = [
                threading.Thread(target=watch_close, args=(ws, closes, index), daemon=True)
                for index, ws in enumerate(sockets)
            ]
            for watcher in watchers:
                watcher.start()
            thread, result = start_slow_request(daphne.port, 2)
            daphne.wait_for("SLOW STARTED")
            signalled = time.monotonic()
            daphne.signal(signal.SIGTERM)
            daphne.wait_for(f"Stopping: closing {count} WebSockets with 1012 over {drain_time}")
            for watcher in watchers:
                watcher.join(timeout=graceful + 5)
            assert daphne.wait(timeout=graceful + 5) == 0
            exited = time.monotonic()
            thread.join(timeout=10)
        finally:
            for ws in sockets:
                ws.shutdown()
        assert [code for _, code in closes] == [1012] * count, closes
        times = sorted(at for at, _ in closes)
        assert times[-1] - times[0] >= drain_time / 3, times
        assert times[-1] - signalled <= drain_time + 2, times  # the last batch is on time
        assert exited - signalled <= graceful + 3
        assert result.get("status") == 200, result
        assert result["body"] == b"slow done"
        disconnects = [
            line.split()[2:4] for line in daphne.output if line.startswith("WS DISCONNECT ")
        ]
        assert len({reply for _, reply in disconnects}) == count, daphne.output
        assert {code for code, _ in disconnects} == {"1012"}, disconnects
