"""A `WorkerGroup` stopping on Redis with at-least-once channels (C-33, issue 17).

The group's process ends once every worker has stopped: a busy one after its message, an
idle one where it waits. A sub-worker that took a message after the signal hands it back
before the process ends, so the next worker gets it as a first delivery, at once; ending
the process meanwhile left it leased, to come back after the ack timeout counted twice
(CI met it in ``test_sigterm_hands_back_unstarted_messages``).
"""

from __future__ import annotations

import signal
import threading
import time

from asgi_redis import RedisChannelLayer
from channels import route
from channels.asgi import ChannelLayerWrapper
from channels.layers.base import DELIVERY_KEY
from channels.worker import WorkerGroup
from tests.channels.test_runworker_delivery import wait_until

ALO = {"at_least_once": ["alo.*"], "ack_timeout": 60, "max_deliveries": 3}
WAIT = 30.0


class SlowHandBack(RedisChannelLayer):
    """Hands a message back only after the group's own worker finished its message: the
    moment the group decides whether the process may end."""

    group: WorkerGroup
    releasing: threading.Event
    events: list[str]

    def release(self, channel: str, delivery_id: str) -> bool:
        self.releasing.set()
        assert wait_until(lambda: not self.group.in_job, WAIT)
        released = super().release(channel, delivery_id)
        self.events.append("released")
        return released


def test_group_ends_after_a_sub_worker_hands_back_its_message(redis_server):
    """C-33: the group's own worker busy, a sub-worker idle; after SIGTERM the idle one
    takes an at-least-once message and hands it back; run() returns only after that."""
    started, finish = threading.Event(), threading.Event()
    ran: list[int] = []

    def hold(message):
        started.set()
        # Short waits: the main thread runs the SIGTERM handler between them (a CI run
        # saw it run only when one 30 s wait ended).
        give_up = time.monotonic() + WAIT
        while not finish.wait(0.01):
            assert time.monotonic() < give_up

    inner = SlowHandBack(hosts=[redis_server.url], **ALO)
    inner.releasing, inner.events = threading.Event(), []
    layer = ChannelLayerWrapper(
        inner,
        "default",
        [route("alo.first", hold), route("alo.second", lambda message: ran.append(1))],
    )
    group = inner.group = WorkerGroup(layer, n_threads=2)
    group.only_channels = ["alo.first"]  # the group's own worker (C-29)
    (sub,) = group.workers
    sub.only_channels = ["alo.second"]
    main = threading.get_ident()

    def drive():
        inner.send("alo.first", {"n": 1})
        assert started.wait(WAIT)
        assert wait_until(lambda: group.threads and sub.parked(group.threads[0].ident), WAIT)
        signal.pthread_kill(main, signal.SIGTERM)
        assert wait_until(lambda: sub.termed, WAIT)
        inner.send("alo.second", {"n": 2})
        assert inner.releasing.wait(WAIT)  # the sub-worker took it while stopping
        finish.set()

    handlers = {signo: signal.getsignal(signo) for signo in (signal.SIGTERM, signal.SIGINT)}
    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        group.run()
        inner.events.append("returned")
    finally:
        for signo, handler in handlers.items():
            signal.signal(signo, handler)
        finish.set()
        driver.join(WAIT)
    assert inner.events == ["released", "returned"]
    assert ran == []
    channel, content = inner.receive(["alo.second"])
    assert channel == "alo.second" and content["n"] == 2
    assert content[DELIVERY_KEY]["count"] == 1
    inner.close()
