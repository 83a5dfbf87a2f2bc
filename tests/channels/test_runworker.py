"""``manage.py runworker`` as a real process on a private Redis (C-31, C-33, C-77).

Shutdown: SIGTERM while idle exits at once; while busy, the current message is finished
first (the consumer waits for a release message, so "busy" is an observed state).
"""

from __future__ import annotations

import signal

import pytest

from tests.channels import e2e
from tests.redis_harness import redis_server_path

pytestmark = [pytest.mark.redis, pytest.mark.slow]

EXIT_TIMEOUT = 20


@pytest.fixture
def redis(redis_server_factory):
    return redis_server_factory()


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed")
    path = tmp_path_factory.mktemp("runworker") / "db.sqlite3"
    e2e.prepare_database(e2e.e2e_env(path))
    return path


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


def test_second_signal_exits_at_once(database, redis, layer):
    """C-33: a second signal to a busy group exits without waiting."""
    proc = e2e.start_worker(e2e.e2e_env(database, redis.url), "--threads", "2")
    try:
        proc.output.wait_for("Listening on channels", timeout=60)
        layer.send("test.hold", {"n": 1})
        receive_one(layer, "test.started")
        proc.process.send_signal(signal.SIGTERM)
        proc.output.wait_for("Shutdown signal received", timeout=EXIT_TIMEOUT)
        proc.process.send_signal(signal.SIGTERM)
        assert wait_exit(proc) != 0
        assert "Second shutdown signal" in proc.output.text()
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
        "test.hold",
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
    """C-88: an unimportable BACKEND stops the command with the alias in the message."""
    env = e2e.e2e_env(database, redis.url, CHANNELS_E2E_BACKEND="nowhere.Layer")
    done = e2e.django_admin(env, "runworker")
    assert done.returncode != 0
    assert "Cannot import BACKEND 'nowhere.Layer' specified for default" in done.stderr


def test_bad_routing_and_unknown_alias_are_one_line_errors(database, redis):
    """C-22/C-88: a broken ROUTING or unknown --layer → a CommandError, no traceback."""
    env = e2e.e2e_env(database, redis.url, CHANNELS_E2E_ROUTING="nowhere.routing")
    done = e2e.django_admin(env, "runworker")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "CommandError: Cannot import channel routing 'nowhere.routing'" in done.stderr
    done = e2e.django_admin(e2e.e2e_env(database, redis.url), "runworker", "--layer", "other")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "No channel layer 'other' in the CHANNEL_LAYERS setting" in done.stderr


def test_worker_waits_for_redis_and_recovers(database, redis, layer):
    """L-62/C-31: Redis killed and restarted: one ERROR line, then it serves again."""
    proc = e2e.start_worker(e2e.e2e_env(database, redis.url))
    try:
        proc.output.wait_for("Listening on channels", timeout=60)
        redis.kill()
        proc.output.wait_for("Cannot receive from channel layer", timeout=EXIT_TIMEOUT)
        redis.restart()
        layer.send("test.hold", {"n": 2})
        assert receive_one(layer, "test.started") == {"n": 2}
        layer.send("test.release", {})
        assert receive_one(layer, "test.done") == {"n": 2}
        proc.output.wait_for("works again", timeout=EXIT_TIMEOUT)
        assert proc.output.text().count("Cannot receive from channel layer") == 1
        assert proc.process.poll() is None
    finally:
        proc.stop()
