"""``manage.py runworker`` as a real process on a private Redis (C-31, C-33, C-77).

Shutdown: SIGTERM while idle exits at once; while busy, the current message is finished
first (the consumer waits for a release message, so "busy" is an observed state).
What it prints (issue 14): one "Listening" line per process, one log format (the layer's
lines included), one ERROR and one INFO per Redis outage, nothing alarming on Ctrl-C.
"""

from __future__ import annotations

import re
import signal

import pytest

from channels.log import describe_layer
from tests.channels import e2e
from tests.channels.test_runserver import LOG_LINE

pytestmark = [pytest.mark.redis, pytest.mark.slow]

EXIT_TIMEOUT = 20


@pytest.fixture
def redis(redis_server_factory):
    return redis_server_factory()


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return e2e.database_for(tmp_path_factory, "runworker")


@pytest.fixture
def layer(redis):
    from asgi_redis import RedisChannelLayer

    return RedisChannelLayer(hosts=[redis.url])


def receive_one(layer, channel, attempts=6):
    """A message from `channel`; each blocking receive waits at most ~5 s (A-32)."""
    for _ in range(attempts):
        got, content = layer.receive([channel], block=True)
        if got is not None:
            return content
    raise AssertionError(f"nothing arrived on {channel}")


def wait_exit(proc: e2e.Proc) -> int:
    code = proc.process.wait(timeout=EXIT_TIMEOUT)
    proc.output.close()
    return code


def test_sigterm_while_idle_exits_at_once(database, redis):
    """C-31: idle + SIGTERM → logged, exit status 0."""
    proc = e2e.start_worker(e2e.e2e_env(database, redis.url))
    try:
        proc.output.wait_for("Listening on channels", timeout=60)
        proc.process.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0
        assert "Shutdown signal received while idle" in proc.output.text()
    finally:
        proc.stop()


@pytest.mark.parametrize("threads", ["1", "3"])
def test_sigterm_while_busy_finishes_current_message(database, redis, layer, threads):
    """C-31/C-33: busy + SIGTERM → the consumer finishes, then exit 0 (Worker and group)."""
    proc = e2e.start_worker(e2e.e2e_env(database, redis.url), "--threads", threads)
    try:
        proc.output.wait_for("Listening on channels", timeout=60)
        layer.send("test.hold", {"n": 7})
        assert receive_one(layer, "test.started") == {"n": 7}
        proc.process.send_signal(signal.SIGTERM)
        proc.output.wait_for("Shutdown signal received", timeout=EXIT_TIMEOUT)
        assert proc.process.poll() is None  # still finishing its message
        layer.send("test.release", {})
        assert receive_one(layer, "test.done") == {"n": 7}
        assert wait_exit(proc) == 0
    finally:
        proc.stop()


@pytest.mark.parametrize("busy", ["test.hold_main", "test.hold_thread"])
def test_second_signal_exits_at_once(database, redis, layer, busy):
    """C-33: a second signal to a busy group exits without waiting, whichever thread is
    busy (with only a sub-thread busy, the main thread is waiting for it to finish)."""
    proc = e2e.start_worker(e2e.e2e_env(database, redis.url), "--threads", "2")
    try:
        proc.output.wait_for("Listening on channels", timeout=60)
        layer.send(busy, {"n": 1})
        receive_one(layer, "test.started")
        proc.process.send_signal(signal.SIGTERM)
        proc.output.wait_for("Shutdown signal received", timeout=EXIT_TIMEOUT)
        proc.process.send_signal(signal.SIGTERM)
        assert wait_exit(proc) != 0
        assert "Second shutdown signal" in proc.output.text()
    finally:
        proc.stop()


def test_threads_below_one_warns_and_runs_one_thread(database, redis, layer):
    """C-77, issue 13: 1.x ran one worker for ``--threads 0``; so does this, with a
    warning (stricter validation would be a difference 1.x code can observe)."""
    proc = e2e.start_worker(e2e.e2e_env(database, redis.url), "--threads", "0")
    try:
        proc.output.wait_for("Listening on channels", timeout=60)
        assert "--threads 0 is less than 1: running 1 thread" in proc.output.text()
        layer.send("test.hold", {"n": 1})
        receive_one(layer, "test.started")  # the one thread handles messages
    finally:
        proc.stop()


def test_channel_filters_and_verbosity(database, redis, layer):
    """C-29/C-77: --only-channels / --exclude-channels; -v 2 logs each channel."""
    proc = e2e.start_worker(
        e2e.e2e_env(database, redis.url),
        "--only-channels",
        "websocket.*",
        "--only-channels",
        "test.*",
        "--exclude-channels",
        "*.disconnect",
        "--exclude-channels",
        "test.hold*",
        "-v",
        "2",
    )
    try:
        line = proc.output.wait_for("Listening on channels", timeout=60)
        assert line.split("Listening on channels ", 1)[1].strip() == (
            "test.crash, websocket.connect, websocket.receive"
        )
        layer.send("test.crash", {})
        proc.output.wait_for("consumer crashed on purpose", timeout=EXIT_TIMEOUT)
        assert " - DEBUG - " in proc.output.text() and "test.crash" in proc.output.text()
    finally:
        proc.stop()


def test_filters_excluding_everything_are_refused(database, redis):
    """C-29/C-77: filters that leave no channel → CommandError instead of an idle spin."""
    env = e2e.e2e_env(database, redis.url)
    done = e2e.django_admin(env, "runworker", "--only-channels", "nothing.*")
    assert done.returncode != 0
    assert "No channels to listen on" in done.stderr and "http.request" in done.stderr


def test_in_memory_layer_is_refused(database):
    """C-77: a local-only layer → CommandError with the spec's text."""
    done = e2e.django_admin(e2e.e2e_env(database), "runworker")
    assert done.returncode != 0
    assert "You cannot span multiple processes with the in-memory layer." in done.stderr


def test_bad_backend_setting_is_a_clear_error(database, redis):
    """C-88 / issue 14: an unimportable BACKEND stops the command at its system checks
    (channels.E004), with the alias and Python's import error in the message."""
    env = e2e.e2e_env(database, redis.url, CHANNELS_E2E_BACKEND="nowhere.Layer")
    done = e2e.django_admin(env, "runworker")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert (
        "(channels.E004) Cannot import BACKEND 'nowhere.Layer' specified for default: "
        "ModuleNotFoundError: No module named 'nowhere'"
    ) in done.stderr


def test_bad_routing_and_unknown_alias_are_one_line_errors(database, redis):
    """C-22/C-88 / issue 14: a broken ROUTING (check channels.E006) or an unknown
    --layer (CommandError) stops the command without a traceback."""
    env = e2e.e2e_env(database, redis.url, CHANNELS_E2E_ROUTING="nowhere.routing")
    done = e2e.django_admin(env, "runworker")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "(channels.E006) ROUTING for default cannot be loaded" in done.stderr
    assert "Cannot import channel routing 'nowhere.routing'" in done.stderr
    done = e2e.django_admin(e2e.e2e_env(database, redis.url), "runworker", "--layer", "other")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "No channel layer 'other' in the CHANNEL_LAYERS setting" in done.stderr


def test_worker_waits_for_redis_and_recovers(database, redis, layer):
    """L-62/C-31 / issue 14: Redis killed and restarted under a 3-thread worker: one
    ERROR naming the alias and the Redis URL, one INFO when it is back (not one per
    thread or retry), asgi_redis's own lines in the same format; then it serves again."""
    proc = e2e.start_worker(e2e.e2e_env(database, redis.url), "--threads", "3")
    try:
        proc.output.wait_for("Listening on channels", timeout=60)
        redis.kill()
        line = proc.output.wait_for("Cannot receive from channel layer", timeout=EXIT_TIMEOUT)
        assert f"default (asgi_redis.core.RedisChannelLayer at {redis.url})" in line
        assert " - ERROR - " in line
        redis.restart()
        layer.send("test.hold", {"n": 2})
        assert receive_one(layer, "test.started") == {"n": 2}
        layer.send("test.release", {})
        assert receive_one(layer, "test.done") == {"n": 2}
        line = proc.output.wait_for("works again", timeout=EXIT_TIMEOUT)
        assert " - INFO - " in line and redis.url in line
        shard_back = proc.output.wait_for("answers again", timeout=EXIT_TIMEOUT)
        assert LOG_LINE.match(shard_back) and " - INFO - " in shard_back
        text = proc.output.text()
        assert text.count("Cannot receive from channel layer") == 1
        assert text.count("works again") == 1
        assert proc.process.poll() is None
    finally:
        proc.stop()
    lines = proc.output.text().splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), lines


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_with_a_request_in_flight_is_quiet(database, redis, layer, signo):
    """Issue 14 / C-33: Ctrl-C (or SIGTERM) while one of 4 threads is busy: the message
    is finished, the process exits 0, and nothing is logged at ERROR (the idle main
    thread used to log its interrupted receive as an outage with an empty reason).
    Four threads, one "Listening on channels" line; every line in the one format."""
    proc = e2e.start_worker(e2e.e2e_env(database, redis.url), "--threads", "4")
    try:
        proc.output.wait_for("Listening on channels", timeout=60)
        layer.send("test.hold", {"n": 3})
        assert receive_one(layer, "test.started") == {"n": 3}
        proc.process.send_signal(signo)
        proc.output.wait_for("Shutdown signal received", timeout=EXIT_TIMEOUT)
        layer.send("test.release", {})
        assert receive_one(layer, "test.done") == {"n": 3}
        assert wait_exit(proc) == 0
    finally:
        proc.stop()
    text = proc.output.text()
    assert " - ERROR - " not in text and " - WARNING - " not in text, text
    assert text.count("Listening on channels") == 1
    assert all(LOG_LINE.match(line) for line in text.splitlines()), text


class _Layer:
    def __init__(self, hosts):
        self.hosts = hosts


class _Wrapper:
    def __init__(self, hosts):
        self.channel_layer = _Layer(hosts)

    def __str__(self):
        return "default (asgi_redis.core.RedisChannelLayer)"


@pytest.mark.parametrize(
    ("hosts", "shown"),
    [
        (["redis://:s3cret@db:6379/0"], "redis://***@db:6379/0"),
        (["redis://app:s3cret@db:6379/0", "redis://db2:6379/0"], "redis://app:***@db:6379/0, "),
        ([("10.0.0.5", 26379)], "10.0.0.5:26379"),
    ],
)
def test_outage_lines_name_servers_without_passwords(hosts, shown):
    """Issue 14: the worker's outage lines name the layer and its servers, never a
    password (``describe_layer``)."""
    text = describe_layer(_Wrapper(hosts))
    assert text.startswith("default (asgi_redis.core.RedisChannelLayer at ")
    assert shown in text and "s3cret" not in text
    assert re.fullmatch(r"default \(.* at .*\)", text)


def test_metrics_port_taken_is_a_one_line_error(database, redis):
    """Issue 18: a busy --metrics-port stops runworker with one line naming it."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = e2e.e2e_env(database, redis.url)
        done = e2e.django_admin(env, "runworker", "--metrics-port", str(port))
    assert done.returncode != 0
    assert f"Cannot serve metrics on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr
