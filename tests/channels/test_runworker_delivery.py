"""At-least-once delivery with real ``manage.py runworker`` processes on a private Redis
(issue 17): a SIGKILLed worker's message is redelivered to another worker after
``ack_timeout``; a raising consumer's message comes back (count 2) and after
``max_deliveries`` is a dead letter; SIGTERM hands back what was received, not started;
``manage.py deadletters`` lists, requeues and purges.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.channels import e2e

pytestmark = [pytest.mark.redis, pytest.mark.slow]

EXIT_TIMEOUT = 20
ALO = {"at_least_once": ["alo.hold", "alo.crash"], "ack_timeout": 2, "max_deliveries": 3}


@pytest.fixture
def redis(redis_server_factory):
    return redis_server_factory()


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return e2e.database_for(tmp_path_factory, "runworker_delivery")


@pytest.fixture
def layer(redis):
    from asgi_redis import RedisChannelLayer

    built = RedisChannelLayer(hosts=[redis.url], **ALO)
    yield built
    built.close()


def env_for(database, redis):
    return e2e.e2e_env(
        database,
        redis.url,
        CHANNELS_E2E_AT_LEAST_ONCE=",".join(ALO["at_least_once"]),
        CHANNELS_E2E_ACK_TIMEOUT=str(ALO["ack_timeout"]),
        CHANNELS_E2E_MAX_DELIVERIES=str(ALO["max_deliveries"]),
    )


def receive_one(layer, channel, attempts=6):
    """A message from `channel`; each blocking receive waits at most ~5 s (A-32)."""
    for _ in range(attempts):
        got, content = layer.receive([channel], block=True)
        if got is not None:
            return content
    raise AssertionError(f"nothing arrived on {channel}")


def wait_until(check, timeout=15.0, interval=0.05):
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if check():
            return True
        time.sleep(interval)  # polling a Redis figure, bounded; nothing to wait on
    return False


def leases(layer, channel):
    return layer.connection(0).zcard(f"{layer.prefix}{{{channel}}}:lease")


def test_sigkilled_worker_message_goes_to_another_worker(database, redis, layer):
    """Issue 17: SIGKILL mid-consumer → redelivered (count 2) to a second worker after
    ack_timeout, which acknowledges it."""
    env = env_for(database, redis)
    first = e2e.start_worker(env)
    second = None
    try:
        first.output.wait_for("Listening on channels", timeout=60)
        layer.send("alo.hold", {"n": 1})
        started = receive_one(layer, "alo_report.started")
        assert (started["n"], started["count"], started["redelivered"]) == (1, 1, False)
        assert started["pid"] == first.process.pid
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=EXIT_TIMEOUT)
        killed_at = time.monotonic()
        second = e2e.start_worker(env)
        second.output.wait_for("Listening on channels", timeout=60)
        again = receive_one(layer, "alo_report.started")
        assert (again["n"], again["count"], again["redelivered"]) == (1, 2, True)
        assert again["pid"] == second.process.pid
        assert time.monotonic() - killed_at < ALO["ack_timeout"] + 60
        layer.send("test.release", {})
        assert receive_one(layer, "alo_report.done")["count"] == 2
        assert wait_until(lambda: leases(layer, "alo.hold") == 0)
        assert layer.global_statistics()["redelivered_count"] == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_raising_consumer_redelivered_then_dead_lettered(database, redis, layer):
    """Issue 17: delivery counts 1, 2, 3 (with back-off), then a dead letter, logged once."""
    proc = e2e.start_worker(env_for(database, redis))
    try:
        proc.output.wait_for("Listening on channels", timeout=60)
        layer.send("alo.crash", {"n": 5})
        attempts = [receive_one(layer, "alo_report.attempt") for _ in range(3)]
        assert [(a["count"], a["redelivered"]) for a in attempts] == [
            (1, False),
            (2, True),
            (3, True),
        ]
        assert wait_until(lambda: layer.dead_letters() != [])
        (letter,) = layer.dead_letters()
        assert (letter.channel, letter.content, letter.deliveries) == ("alo.crash", {"n": 5}, 3)
        assert layer.global_statistics()["dead_lettered_count"] == 1
        proc.output.wait_for("moved to dead letters", timeout=EXIT_TIMEOUT)
        assert proc.output.text().count("moved to dead letters") == 1

        # manage.py deadletters: list, requeue (delivered again from count 1), purge.
        env = env_for(database, redis)
        listed = e2e.django_admin(env, "deadletters", "list")
        assert listed.returncode == 0, listed.stderr
        assert "alo.crash" in listed.stdout and "3 deliveries" in listed.stdout
        requeued = e2e.django_admin(env, "deadletters", "requeue", "--channel", "alo.*")
        assert requeued.returncode == 0, requeued.stderr
        assert "Requeued 1 dead letter" in requeued.stdout
        again = receive_one(layer, "alo_report.attempt")
        assert (again["n"], again["count"]) == (5, 1)
        assert wait_until(lambda: layer.dead_letters() != [], timeout=20)
        purged = e2e.django_admin(env, "deadletters", "purge")
        assert purged.returncode == 0 and "Purged 1 dead letter" in purged.stdout
        assert layer.dead_letters() == []
    finally:
        proc.stop()


def test_sigterm_hands_back_unstarted_messages(database, redis, layer):
    """Issue 17 / C-33: a group stopping finishes its current message; a message one of
    its idle threads receives meanwhile is handed back uncounted, for another worker."""
    env = env_for(database, redis)
    proc = e2e.start_worker(env, "--threads", "2")
    try:
        proc.output.wait_for("Listening on channels", timeout=60)
        layer.send("alo.hold", {"n": 1})
        assert receive_one(layer, "alo_report.started")["n"] == 1
        proc.process.send_signal(signal.SIGTERM)
        proc.output.wait_for("Shutdown signal received", timeout=EXIT_TIMEOUT)
        layer.send("alo.hold", {"n": 2})
        layer.send("test.release", {})
        assert receive_one(layer, "alo_report.done")["n"] == 1
        assert proc.process.wait(timeout=EXIT_TIMEOUT) == 0
        # n=2 was never started here: the next worker gets it as a first delivery.
        assert layer.receive(["alo_report.started"]) == (None, None)
        channel, content = layer.receive(["alo.hold"], block=True)
        assert channel == "alo.hold" and content["n"] == 2
        assert content["__asgi_delivery__"]["count"] == 1
    finally:
        proc.stop()
