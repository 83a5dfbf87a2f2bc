"""``manage.py runserver``: daphne + worker threads in one process (C-78..C-81, C-6).

Real runserver processes on the in-memory layer answer HTTP and WebSocket, serve static
files in DEBUG, log each request, reload on a code change and stop on SIGINT.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
import websocket

from channels.management.commands.runserver import Command, WorkerThread
from tests.channels import e2e
from tests.examples import processes
from tests.redis_harness import free_port

TIMEOUT = 15


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    path = tmp_path_factory.mktemp("runserver") / "db.sqlite3"
    e2e.prepare_database(e2e.e2e_env(path))
    return path


def start_runserver(env, *args, new_session=False, host="127.0.0.1"):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", f"{host}:{port}", *args],
        cwd=e2e.REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,
    )
    output = processes.Output(process)
    return port, e2e.Proc(process, output)


@pytest.mark.slow
def test_runserver_serves_http_websocket_and_static(database):
    """C-79: in-memory layer, daphne + worker threads; static in DEBUG; access log; SIGINT."""
    env = e2e.e2e_env(database, CHANNELS_E2E_DEBUG="1")
    port, proc = start_runserver(env, "--noreload")
    try:
        proc.output.wait_for("Quit the server with CONTROL-C.", timeout=60)
        processes.wait_for_port(port, proc.process, timeout=30, output=proc.output)
        text = proc.output.text()
        assert f"Starting Channels development server at http://127.0.0.1:{port}/" in text
        assert "Channel layer default (channels.layers.inmemory.ChannelLayer)" in text
        assert "using settings 'tests.testproject.e2e_settings'" in text

        url = f"http://127.0.0.1:{port}"
        response = requests.get(f"{url}/hello/", timeout=TIMEOUT)
        assert response.status_code == 200 and response.text == "Hello World!"
        static = requests.get(f"{url}/static/testproject/style.css", timeout=TIMEOUT)
        assert static.status_code == 200 and static.text == "body { color: red; }\n"
        assert requests.get(f"{url}/nope/", timeout=TIMEOUT).status_code == 404

        sockets = [
            websocket.create_connection(f"ws://127.0.0.1:{port}/room/", timeout=TIMEOUT)
            for _ in range(3)
        ]
        try:
            sockets[0].send("to everyone")
            assert [ws.recv() for ws in sockets] == ["to everyone"] * 3
        finally:
            for ws in sockets:
                ws.close()

        proc.output.wait_for("HTTP GET /hello/ 200 [", timeout=TIMEOUT)
        proc.output.wait_for("HTTP GET /nope/ 404 [", timeout=TIMEOUT)
        proc.output.wait_for("WebSocket CONNECT /room/ [127.0.0.1:", timeout=TIMEOUT)

        proc.process.send_signal(signal.SIGINT)
        assert proc.process.wait(timeout=TIMEOUT) == 0
    finally:
        proc.stop()


@pytest.mark.slow
def test_noworker_leaves_requests_to_a_separate_worker(database):
    """C-78: --noworker starts no worker threads: nothing consumes http.request."""
    env = e2e.e2e_env(database)
    port, proc = start_runserver(env, "--noreload", "--noworker", "--http_timeout", "2")
    try:
        proc.output.wait_for("Quit the server with CONTROL-C.", timeout=60)
        processes.wait_for_port(port, proc.process, timeout=30, output=proc.output)
        # No worker: daphne's HTTP timeout answers 503 (D-24).
        response = requests.get(f"http://127.0.0.1:{port}/hello/", timeout=TIMEOUT)
        assert response.status_code == 503
    finally:
        proc.stop()


@pytest.mark.slow
def test_noasgi_runs_djangos_wsgi_server(database):
    """C-79 step 1: --noasgi runs Django's own WSGI runserver."""
    env = e2e.e2e_env(database)
    port, proc = start_runserver(env, "--noreload", "--noasgi")
    try:
        proc.output.wait_for("Starting development server at", timeout=60)
        processes.wait_for_port(port, proc.process, timeout=30, output=proc.output)
        response = requests.get(f"http://127.0.0.1:{port}/hello/", timeout=TIMEOUT)
        assert response.text == "Hello World!"
        assert "WSGIServer" in response.headers.get("Server", "")
    finally:
        proc.stop()


@pytest.mark.slow
def test_no_default_layer_runs_djangos_server(database):
    """C-79 step 1 / C-82: without a "default" layer, runserver is Django's."""
    env = e2e.e2e_env(database, CHANNELS_E2E_NO_LAYERS="1")
    port, proc = start_runserver(env, "--noreload")
    try:
        proc.output.wait_for("Starting development server at", timeout=60)
        processes.wait_for_port(port, proc.process, timeout=30, output=proc.output)
        assert requests.get(f"http://127.0.0.1:{port}/hello/", timeout=TIMEOUT).ok
    finally:
        proc.stop()


@pytest.mark.slow
def test_ipv6_address(database):
    """C-78/C-79: an IPv6 address is bracketed in the banner and daphne listens on it."""
    env = e2e.e2e_env(database)
    port, proc = start_runserver(env, "--noreload", host="[::1]")
    try:
        line = proc.output.wait_for("Starting Channels development server at", timeout=60)
        assert f"http://[::1]:{port}/" in line
        processes.wait_for_port(port, proc.process, timeout=30, output=proc.output, host="::1")
        response = requests.get(f"http://[::1]:{port}/hello/", timeout=TIMEOUT)
        assert response.text == "Hello World!"
    finally:
        proc.stop()


@pytest.mark.slow
def test_autoreload_serves_changed_code(database, tmp_path):
    """C-79: with the reloader, daphne runs in the reloader's thread; a code change reloads."""
    marker = tmp_path / "reload_marker.py"
    marker.write_text('VALUE = "one"\n')
    env = e2e.e2e_env(database, CHANNELS_E2E_MARKER_DIR=str(tmp_path))
    port, proc = start_runserver(env, new_session=True)
    url = f"http://127.0.0.1:{port}/reload-marker/"
    try:
        proc.output.wait_for("Quit the server with CONTROL-C.", timeout=60)
        processes.wait_for_port(port, proc.process, timeout=30, output=proc.output)
        assert requests.get(url, timeout=TIMEOUT).text == "one"
        # Make the change visible to a stat-based reloader even within the same second.
        marker.write_text('VALUE = "two"\n')
        later = time.time() + 2
        os.utime(marker, (later, later))
        # The reloader restarts the child; its only sign is the new code being served.
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url, timeout=TIMEOUT).text == "two":
                    break
            except requests.ConnectionError:
                pass  # the new child is still starting; nothing to await but its port
            assert time.monotonic() < deadline, proc.output.text()
            time.sleep(0.2)
    finally:
        if proc.process.poll() is None:
            os.killpg(proc.process.pid, signal.SIGINT)
            try:
                proc.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.process.pid, signal.SIGKILL)
        proc.stop()


# -- in-process pieces (C-6, C-78, C-80, C-81) ----------------------------------------


def test_staticfiles_runserver_runs_channels_server():
    """C-6: staticfiles' runserver Command is rebased onto ours (idempotently)."""
    from django.contrib.staticfiles.management.commands import runserver as static_runserver

    from channels.hacks import monkeypatch_django

    monkeypatch_django()
    monkeypatch_django()
    assert static_runserver.Command.__bases__ == (Command,)
    assert issubclass(static_runserver.Command, Command)


def test_options_and_defaults():
    """C-78: Django's options kept; --noworker, --noasgi and the timeouts added."""
    from django.contrib.staticfiles.management.commands.runserver import Command as Static

    parser = Static().create_parser("manage.py", "runserver")
    options = vars(parser.parse_args([]))
    assert options["run_worker"] is True and options["use_asgi"] is True
    assert options["http_timeout"] == 60 and options["websocket_handshake_timeout"] == 5
    assert options["use_static_handler"] is True and options["insecure_serving"] is False
    options = vars(
        parser.parse_args(
            ["8001", "--noworker", "--noasgi", "--http_timeout", "9", "--nostatic", "-6"]
        )
    )
    assert options["run_worker"] is False and options["use_asgi"] is False
    assert options["http_timeout"] == 9 and options["use_static_handler"] is False
    assert options["use_ipv6"] is True and options["addrport"] == "8001"


def log_line(protocol, action, details):
    stderr = io.StringIO()
    old = sys.stderr
    sys.stderr = stderr
    try:
        command = Command(no_color=True)
        command.log_action(protocol, action, details)
    finally:
        sys.stderr = old
    return stderr.getvalue()


def test_log_action_formats():
    """C-80: HTTP and WebSocket access lines prefixed with a timestamp."""
    line = log_line(
        "http",
        "complete",
        {
            "method": "GET",
            "path": "/x/",
            "status": 200,
            "time_taken": 0.12345,
            "client": "1.2.3.4:5",
        },
    )
    assert line.startswith("[") and line[20:22] == "] "
    assert line[22:] == "HTTP GET /x/ 200 [0.12, 1.2.3.4:5]\n"
    for action, word in [
        ("connecting", "HANDSHAKING"),
        ("connected", "CONNECT"),
        ("disconnected", "DISCONNECT"),
        ("rejected", "REJECT"),
    ]:
        line = log_line("websocket", action, {"path": "/ws/", "client": "1.2.3.4:5"})
        assert line[22:] == f"WebSocket {word} /ws/ [1.2.3.4:5]\n"
    assert len(log_line("websocket", "unknown", {})) == 22


def test_log_action_colours_by_status():
    """C-80: colour roles by status class."""
    command = Command()
    style = command.style
    assert command._style_http(101) == style.HTTP_INFO
    assert command._style_http(200) == style.HTTP_SUCCESS
    assert command._style_http(304) == style.HTTP_NOT_MODIFIED
    assert command._style_http(302) == style.HTTP_REDIRECT
    assert command._style_http(404) == style.HTTP_NOT_FOUND
    assert command._style_http(400) == style.HTTP_BAD_REQUEST
    assert command._style_http(500) == style.HTTP_SERVER_ERROR


def test_worker_thread_serves_messages():
    """C-81: WorkerThread runs a signal-free Worker in a daemon thread."""
    import logging
    import threading

    from channels import route
    from tests.channels.helpers import fresh_layer

    handled = threading.Event()
    with fresh_layer([route("test.in", lambda message: handled.set())]) as layer:
        thread = WorkerThread(layer, logging.getLogger("django.channels"))
        assert thread.daemon
        thread.start()
        layer.send("test.in", {})
        assert handled.wait(10)
