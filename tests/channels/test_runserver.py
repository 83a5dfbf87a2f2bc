"""``manage.py runserver``: daphne + worker threads in one process (C-78..C-81, C-6).

Real runserver processes on the in-memory layer answer HTTP and WebSocket, serve static
files in DEBUG, log each request, reload on a code change and stop on SIGINT. The first
hour's mistakes (issue 14) get Django's answers: a port in use, a missing or misspelt
CHANNEL_LAYERS. 1.x tests that mock ``Command.server_cls`` keep working (C-79, issue 13).
"""

from __future__ import annotations

import http.client
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from unittest import mock

import pytest
import requests
import websocket
from django.core.management import CommandError, call_command
from django.test import override_settings

from channels.management.commands.runserver import Command, WorkerThread
from support.redis_harness import free_port
from tests.channels import e2e
from tests.examples import processes

TIMEOUT = 15
# Every log line the commands print, daphne's included, has this one shape (issue 14):
# "2026-12-03 09:41:17,301 - INFO - worker - Listening on channels ...".
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - (DEBUG|INFO|WARNING|ERROR) - \w+ - \S"
)
# runserver's access lines keep their C-80 form.
ACCESS_LINE = re.compile(r"^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\] (HTTP|WebSocket) ")


# Django's own console logging (django.request in DEBUG) is Django's, as under its runserver.
DJANGO_LINE = re.compile(r"^Not Found: /")


def assert_one_log_format(lines: list[str]) -> None:
    odd = [
        line
        for line in lines
        if not (LOG_LINE.match(line) or ACCESS_LINE.match(line) or DJANGO_LINE.match(line))
    ]
    assert not odd, odd


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return e2e.database_for(tmp_path_factory, "runserver", needs_redis=False)


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
        proc.output.close()
        text = proc.output.text()
        # Issue 14: four worker threads, one "Listening" line; everything after the
        # banner is a log line of the one format or an access line; no alarms.
        assert text.count("Listening on channels") == 1
        after_banner = text.split("Quit the server with CONTROL-C.\n", 1)[1]
        assert_one_log_format(after_banner.splitlines())
        assert " - WARNING - " not in text and " - ERROR - " not in text
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
        # Asked for explicitly: no explanation printed (issue 14).
        assert "plain WSGI server" not in proc.output.text()
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
        # Issue 14: one line says why this is Django's server, and the check agrees.
        text = proc.output.text()
        assert text.count("CHANNEL_LAYERS is empty: running Django's plain WSGI server") == 1
        assert "(channels.W001) CHANNEL_LAYERS is empty" in text
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


@pytest.mark.slow
def test_ctrl_c_with_the_reloader_answers_waiting_requests(database):
    """Issue 14 point 8 under the runserver a newcomer runs (with the reloader): Ctrl-C
    (SIGINT to the terminal's process group) stops daphne gracefully in the reloader's
    child. A request the application never answers gets 503 and one log line, rather
    than the connection dropped as Django's reloading parent killed the child 0.25 s
    after Ctrl-C; both processes exit 0 within the short development grace."""
    port, proc = start_runserver(e2e.e2e_env(database), new_session=True)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        proc.output.wait_for("Quit the server with CONTROL-C.", timeout=60)
        processes.wait_for_port(port, proc.process, timeout=30, output=proc.output)
        # An established keep-alive connection, then the request nobody answers on it.
        connection.request("GET", "/hello/")
        assert connection.getresponse().read()
        connection.request("GET", "/later/")
        # A whole request on another connection after it: daphne has read /later/ by now.
        assert requests.get(f"http://127.0.0.1:{port}/hello/", timeout=TIMEOUT).ok
        os.killpg(proc.process.pid, signal.SIGINT)
        answer = connection.getresponse()
        assert answer.status == 503
        assert proc.process.wait(TIMEOUT) == 0, proc.output.text()
    finally:
        connection.close()
        if proc.process.poll() is None:
            os.killpg(proc.process.pid, signal.SIGKILL)
        proc.stop()
    text = proc.output.text()
    assert "Stopping: answered 1 HTTP request still waiting for the application with 503" in text
    assert "Traceback" not in text


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


# -- the first hour's mistakes (issue 14) and 1.x's mocked server_cls (issue 13) ------


def run_to_exit(env, *args, timeout=90):
    """Run ``django-admin <args>`` to its end in its own session (the reloader's child
    included), killing the whole session if it outlives `timeout`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "django", *args],
        cwd=e2e.REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        raise AssertionError(f"{args} did not exit; output:\n{stdout}{stderr}")
    return process.returncode, stdout, stderr


@pytest.mark.slow
@pytest.mark.parametrize("reload", [False, True], ids=["noreload", "reloader"])
def test_port_in_use_is_djangos_error(database, reload):
    """Issue 14: a taken port → Django's "Error: That port is already in use." and
    exit status 1, as Django's runserver (not a server left running on nothing)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["runserver", f"127.0.0.1:{port}"] + ([] if reload else ["--noreload"])
        code, stdout, stderr = run_to_exit(e2e.e2e_env(database), *args)
    assert code == 1, stdout + stderr
    assert stderr.rstrip().endswith("Error: That port is already in use."), stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_address_not_on_this_machine_is_djangos_error(database):
    """Issue 14: an address no interface has (TEST-NET-1) → Django's words, status 1."""
    code, stdout, stderr = run_to_exit(
        e2e.e2e_env(database), "runserver", "--noreload", f"192.0.2.1:{free_port()}"
    )
    assert code == 1, stdout + stderr
    assert stderr.rstrip().endswith("Error: That IP address can't be assigned to."), stderr


def settings_module(tmp_path, name, body):
    """A settings module `name` in `tmp_path`: the e2e settings plus `body`."""
    (tmp_path / f"{name}.py").write_text(
        "from tests.testproject.e2e_settings import *  # noqa: F403\n" + body
    )


def env_with_settings(database, tmp_path, name):
    env = e2e.e2e_env(database)
    env["DJANGO_SETTINGS_MODULE"] = name
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    return env


@pytest.mark.slow
def test_misspelt_channel_layers_says_why_it_falls_back(database, tmp_path):
    """Issue 14 / C-82: CHANNELS_LAYERS instead of CHANNEL_LAYERS → Django's server, and
    one stderr line saying so and why; the check names the setting to use (W002)."""
    settings_module(
        tmp_path,
        "misspelt_settings",
        "CHANNELS_LAYERS = CHANNEL_LAYERS\ndel CHANNEL_LAYERS\n",
    )
    env = env_with_settings(database, tmp_path, "misspelt_settings")
    port, proc = start_runserver(env, "--noreload")
    try:
        proc.output.wait_for("Starting development server at", timeout=60)
        text = proc.output.text()
        line = (
            "CHANNEL_LAYERS is not set (CHANNELS_LAYERS is; did you mean CHANNEL_LAYERS?): "
            "running Django's plain WSGI server; WebSocket requests will get 404. "
            "Configure CHANNEL_LAYERS['default'] to run Channels.\n"
        )
        assert text.count(line) == 1, text
        assert "(channels.W002) The setting CHANNELS_LAYERS is not a Channels setting" in text
    finally:
        proc.stop()


@pytest.mark.slow
def test_bad_backend_stops_runserver_with_the_check(database, tmp_path):
    """Issue 14: an unimportable BACKEND is reported by the channels.E004 check before
    anything starts, with Python's import error."""
    settings_module(
        tmp_path,
        "bad_backend_settings",
        'CHANNEL_LAYERS["default"]["BACKEND"] = "asgi_redis.RedisLayer"\n',
    )
    env = env_with_settings(database, tmp_path, "bad_backend_settings")
    code, stdout, stderr = run_to_exit(env, "runserver", "--noreload", f"{free_port()}")
    assert code != 0
    assert (
        "(channels.E004) Cannot import BACKEND 'asgi_redis.RedisLayer' specified for default"
        in stderr
    )
    assert "Starting Channels development server" not in stdout


def test_server_cls_is_daphnes_server_imported_lazily():
    """C-79: ``Command.server_cls`` is ``daphne.server.Server``; loading the command (every
    Django process does, C-6) does not import it, which would install Twisted's reactor."""
    from daphne.server import Server

    assert Command.server_cls is Server
    code = (
        "import sys, django; django.setup(); "
        "import channels.management.commands.runserver; "
        "print('twisted.internet.reactor' in sys.modules, 'daphne.server' in sys.modules)"
    )
    env = processes.example_env(DJANGO_SETTINGS_MODULE="tests.testproject.settings")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=e2e.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split() == ["False", "False"], done.stdout + done.stderr


def run_with_mocked_server(mocked_server):
    """``runserver --noreload --noworker``: the mocked class is built with exactly 1.x's
    keywords and run (no real daphne on :8000)."""
    call_command("runserver", "--noreload", "--noworker")
    mocked_server.assert_called_with(
        endpoints=["tcp:port=8000:interface=127.0.0.1"],
        signal_handlers=True,
        http_timeout=60,
        action_logger=mock.ANY,
        channel_layer=mock.ANY,
        ws_protocols=None,
        root_path="",
        websocket_handshake_timeout=5,
    )
    mocked_server.return_value.run.assert_called_once_with()


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=["*"])
@mock.patch("channels.management.commands.runserver.sys.stdout", new_callable=io.StringIO)
@mock.patch("channels.management.commands.runserver.Command.server_cls")
def test_runserver_builds_server_cls_1x(mocked_server, mock_stdout):
    """C-79 / issue 13, as 1.x's own test: a mocked ``server_cls`` is what runserver
    builds, with exactly these keywords, and runs (no real daphne on :8000)."""
    run_with_mocked_server(mocked_server)
    assert "Starting Channels development server at http://127.0.0.1:8000/" in (
        mock_stdout.getvalue()
    )


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=["*"])
@mock.patch("channels.management.commands.runserver.sys.stdout", new_callable=io.StringIO)
@mock.patch("channels.management.commands.runserver.Server")
def test_runserver_builds_module_server_1_0(mocked_server, mock_stdout):
    """C-79 / issue 13: tests written for Channels 1.0 replace the module's ``Server``
    instead of ``Command.server_cls``; runserver builds that one (no real daphne on
    :8000), and the module's ``Server`` is daphne's otherwise."""
    run_with_mocked_server(mocked_server)


def test_module_server_is_daphnes():
    """C-79: without a replacement, the module's ``Server`` and ``server_cls`` are daphne's."""
    from channels.management.commands import runserver
    from daphne.server import Server

    assert runserver.Server is Server
    assert "Server" not in vars(runserver)
    assert Command.server_cls is Server


@pytest.mark.django_db
@override_settings(
    ALLOWED_HOSTS=["*"], CHANNELS_WS_PROTOCOLS=["graphql-ws"], FORCE_SCRIPT_NAME="/app"
)
@mock.patch("channels.management.commands.runserver.WorkerThread")
@mock.patch("channels.management.commands.runserver.Command.server_cls")
def test_runserver_options_reach_server_cls(mocked_server, mocked_thread):
    """C-79: options and settings become server_cls keywords; four worker threads, one of
    which announces what it listens on (issue 14)."""
    call_command(
        "runserver",
        "127.0.0.1:8123",
        "--noreload",
        "--http_timeout",
        "7",
        "--websocket_handshake_timeout",
        "3",
        stdout=io.StringIO(),
    )
    kwargs = mocked_server.call_args.kwargs
    assert kwargs["endpoints"] == ["tcp:port=8123:interface=127.0.0.1"]
    assert kwargs["http_timeout"] == 7 and kwargs["websocket_handshake_timeout"] == 3
    assert kwargs["ws_protocols"] == ["graphql-ws"] and kwargs["root_path"] == "/app"
    assert [c.kwargs["log_listening"] for c in mocked_thread.call_args_list] == [
        True,
        False,
        False,
        False,
    ]
    assert mocked_thread.return_value.start.call_count == 4


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=["*"], CHANNELS_WS_PROTOCOLS="graphql-ws")
@mock.patch("channels.management.commands.runserver.WorkerThread")
@mock.patch("channels.management.commands.runserver.Command.server_cls")
def test_runserver_checks_server_options_with_daphnes_config(mocked_server, mocked_thread):
    """Issue 16 item 3: runserver's values go through daphne's ServerConfig; a bad one is
    a CommandError in runserver's own words, and no server is built."""
    stdout = io.StringIO()
    with pytest.raises(CommandError, match="the CHANNELS_WS_PROTOCOLS setting must be a list"):
        call_command("runserver", "--noreload", stdout=stdout)
    mocked_server.assert_not_called()
    mocked_thread.assert_not_called()
    assert "Starting Channels" not in stdout.getvalue()  # refused before anything started


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=["*"])
@mock.patch("channels.management.commands.runserver.WorkerThread")
@mock.patch("channels.management.commands.runserver.Command.server_cls")
def test_runserver_words_a_bad_timeout_with_its_option(mocked_server, mocked_thread):
    """Issue 16 item 3: the ConfigError names runserver's option."""
    with pytest.raises(CommandError, match=r"--http_timeout is negative \(-1\); use 0 or more"):
        call_command("runserver", "--noreload", "--http_timeout=-1", stdout=io.StringIO())
    mocked_server.assert_not_called()


def test_one_log_format_comes_from_daphne_without_django():
    """Issue 14: the shared format lives in ``daphne.logfmt``, importable with no Django
    (daphne runs without it, ARCHITECTURE.md); channels.log formats with it (C-76)."""
    import logging

    import channels.log
    from daphne.logfmt import LOG_FORMAT, formatter

    channels.log.setup_logger("tests.logfmt_probe")
    assert channels.log.handler.formatter._fmt == LOG_FORMAT == formatter()._fmt
    record = logging.LogRecord("daphne.server", logging.INFO, "/x/server.py", 1, "hi", (), None)
    assert LOG_LINE.match(formatter().format(record))
    code = "import sys; sys.modules['django'] = None; import daphne.logfmt; print('ok')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=e2e.REPO,
        env=processes.example_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "ok", done.stderr
