"""The worker and at-least-once delivery (issue 17), in process on the in-memory layer:
ack after the consumer and its replies, redelivery with back-off when it raises, dead
letters after max_deliveries, hand-back of a message received while stopping."""

from __future__ import annotations

import threading

from channels import Channel, route
from channels.message import Message
from channels.worker import Worker
from tests.channels.helpers import fresh_layer

ALO = {"at_least_once": ["alo.*"], "ack_timeout": 5, "max_deliveries": 3}


def run_in_thread(worker):
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_message_exposes_delivery():
    """Message strips the reserved key and exposes delivery_id / count / redelivered."""
    with fresh_layer([], **ALO) as layer:
        layer.send("alo.m", {"n": 1})
        channel, content = layer.receive(["alo.m"])
        message = Message(content, channel, layer)
        assert message.content == {"n": 1}
        assert (message.delivery_count, message.redelivered) == (1, False)
        assert message.delivery_id is not None
        plain = Message({"n": 2}, "other", layer)
        assert (plain.delivery_id, plain.delivery_count, plain.redelivered) == (None, 1, False)


def test_ack_after_consumer_and_replies():
    """Acknowledged once the consumer returned; its reply went out before the ack."""
    seen = []
    done = threading.Event()

    def consumer(message, **kwargs):
        seen.append((message["n"], message.delivery_count, message.redelivered))
        Channel("test.reply").send({"n": message["n"]})
        done.set()

    with fresh_layer([route("alo.in", consumer)], **ALO) as layer:
        raw = layer.channel_layer
        worker = Worker(layer, signal_handlers=False)
        thread = run_in_thread(worker)
        layer.send("alo.in", {"n": 1})
        assert done.wait(10)
        channel, reply = raw.receive(["test.reply"], block=True)
        worker.stop()
        thread.join(10)
        assert seen == [(1, 1, False)]
        assert reply["n"] == 1
        assert raw._leases == {}  # acknowledged


def test_raising_consumer_is_redelivered_then_dead_lettered():
    """A consumer that raises: delivered again (count 2, redelivered), after back-off;
    after max_deliveries the message is a dead letter."""
    attempts = []
    third = threading.Event()

    def consumer(message, **kwargs):
        attempts.append((message.delivery_count, message.redelivered))
        if len(attempts) == 3:
            third.set()
        raise RuntimeError("fails on purpose")

    with fresh_layer([route("alo.crash", consumer)], **ALO) as layer:
        worker = Worker(layer, signal_handlers=False)
        worker.redelivery_delay_first = 0.05
        thread = run_in_thread(worker)
        layer.send("alo.crash", {"n": 1})
        assert third.wait(10)
        worker.stop()
        thread.join(10)
        assert attempts == [(1, False), (2, True), (3, True)]
        (letter,) = layer.dead_letters()
        assert (letter.channel, letter.content, letter.deliveries) == ("alo.crash", {"n": 1}, 3)
        assert layer.global_statistics()["dead_lettered_count"] == 1


def test_stopping_worker_hands_back_unstarted_message():
    """A message received after stop() is handed back, not run and not counted."""
    ran = []
    with fresh_layer([route("alo.late", lambda message: ran.append(1))], **ALO) as layer:
        worker = Worker(layer, signal_handlers=False)
        original = layer.receive

        def receive(channels, block=False):
            found = original(channels, block=block)
            if found[0] is not None:
                worker.stop()  # the signal lands while the receive returns
            return found

        layer.receive = receive
        layer.send("alo.late", {"n": 1})
        worker.run()
        assert ran == []
        del layer.receive
        channel, content = layer.receive(["alo.late"])
        assert Message(content, channel, layer).delivery_count == 1
