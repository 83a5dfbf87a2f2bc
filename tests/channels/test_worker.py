"""The worker: dispatch, exceptions, ConsumeLater, signals, loop, layer outages (C-27..C-33).

Real in-memory layers for dispatch; a real redis-server that is killed and restarted for
the outage behaviour (L-62).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time

import pytest

from channels import Channel, route
from channels.asgi import ChannelLayerWrapper
from channels.exceptions import (
    ConsumeLater,
    DenyConnection,
    WebsocketCloseException,
)
from channels.layers.base import LayerUnavailable
from channels.layers.inmemory import ChannelLayer
from channels.signals import consumer_finished, consumer_started, worker_ready
from channels.worker import Worker, WorkerGroup
from tests.channels.helpers import fresh_layer

REPLY = "daphne.response.w!c"


def make_layer(routes, **config):
    return fresh_layer(routes, **config)


def test_attributes():
    """C-28: constructor arguments become attributes; termed/in_job start False."""
    with make_layer([]) as layer:
        worker = Worker(layer, message_retries=3, signal_handlers=False, only_channels=["a"])
    assert worker.channel_layer is layer and worker.message_retries == 3
    assert worker.only_channels == ["a"] and worker.exclude_channels is None
    assert worker.termed is False and worker.in_job is False and worker.callback is None


def test_apply_channel_filters():
    """C-29: only → then exclude, case-sensitive globs, order kept."""
    with make_layer([]) as layer:
        worker = Worker(
            layer,
            signal_handlers=False,
            only_channels=["http.*", "websocket.*"],
            exclude_channels=["*.disconnect"],
        )
        names = ["websocket.connect", "Http.request", "http.request", "http.disconnect", "x"]
        assert worker.apply_channel_filters(names) == ["websocket.connect", "http.request"]
        assert Worker(layer, signal_handlers=False).apply_channel_filters(names) == names


def test_ready_sends_worker_ready():
    """C-30: ready() sends worker_ready with the worker as sender."""
    seen = []

    def receiver(sender, **kwargs):
        seen.append(sender)

    worker_ready.connect(receiver)
    try:
        with make_layer([]) as layer:
            worker = Worker(layer, signal_handlers=False)
            worker.ready()
    finally:
        worker_ready.disconnect(receiver)
    assert seen == [worker]


def test_dispatch_with_kwargs_callback_and_signals(records):
    """C-31: route kwargs reach the consumer; callback, then started/finished signals."""
    events = []

    def consumer(message, **kwargs):
        events.append(("consumer", message["path"], kwargs))

    def started(sender, environ, **kwargs):
        events.append(("started", sender, environ))

    def finished(sender, **kwargs):
        events.append(("finished", sender))

    consumer_started.connect(started)
    consumer_finished.connect(finished)
    try:
        routes = [route("websocket.receive", consumer, path=r"^/(?P<room>\w+)/$")]
        with make_layer(routes) as layer:
            worker = Worker(
                layer,
                signal_handlers=False,
                callback=lambda channel, message: events.append(("callback", channel)),
            )
            worker.handle("websocket.receive", {"path": "/lobby/", "reply_channel": REPLY})
    finally:
        consumer_started.disconnect(started)
        consumer_finished.disconnect(finished)
    assert events == [
        ("callback", "websocket.receive"),
        ("started", Worker, {}),
        ("consumer", "/lobby/", {"room": "lobby"}),
        ("finished", Worker),
    ]


def test_unrouted_message_logs_error_and_sends_no_signals(records):
    """C-31 step 3: no match → error log, no signals."""
    started = []

    def receiver(**kwargs):
        started.append(True)

    consumer_started.connect(receiver)
    try:
        with make_layer([]) as layer:
            Worker(layer, signal_handlers=False).handle("websocket.receive", {"path": "/"})
    finally:
        consumer_started.disconnect(receiver)
    assert started == []
    assert records.messages(logging.ERROR) == [
        "Could not find match for message on websocket.receive! Check your routing."
    ]


def test_failing_callback_and_routing_are_logged_not_fatal(records):
    """C-31: a raising callback or custom routing object is logged; the worker goes on."""
    seen = []

    class BrokenRouting:
        def match(self, message):
            raise RuntimeError("routing object broke")

        def channel_names(self):
            return {"test.broken"}

    def callback(channel, message):
        raise RuntimeError("callback broke")

    routes = [route("test.in", lambda message: seen.append(message["n"])), BrokenRouting()]
    with make_layer(routes) as layer:
        worker = Worker(layer, signal_handlers=False, callback=callback)
        worker.handle("test.in", {"n": 1})
        worker.handle("test.broken", {"n": 2})
    assert seen == [1]  # the consumer still ran after the callback failed
    errors = [r for r in records.records if r.levelno == logging.ERROR]
    assert [str(r.exc_info[1]) for r in errors] == ["callback broke", "routing object broke"]
    assert errors[1].getMessage() == "Error routing message on test.broken:"


def test_invalid_channel_name_in_routing_is_a_bug_not_an_outage():
    """A-13/C-31: the layer refusing the channel list raises instead of retrying forever."""
    from channels.layers.base import InvalidChannelName

    with (
        make_layer([route("bad name", lambda message: None)]) as layer,
        pytest.raises(InvalidChannelName),
    ):
        Worker(layer, signal_handlers=False).run()


def test_consumer_error_is_logged_and_pending_sends_still_go_out(records):
    """C-32: other exceptions logged with traceback; C-19: queued sends are still sent."""

    def consumer(message, **kwargs):
        Channel("test.out").send({"before": "error"})
        raise KeyError("consumer bug")

    with make_layer([route("test.in", consumer)]) as layer:
        Worker(layer, signal_handlers=False).handle("test.in", {})
        assert layer.receive(["test.out"]) == ("test.out", {"before": "error"})
    (record,) = [r for r in records.records if r.levelno == logging.ERROR]
    assert record.getMessage().startswith("Error processing message with consumer ")
    assert "test_worker" in record.getMessage() and record.exc_info[0] is KeyError


def test_deny_connection_closes_socket():
    """C-32: DenyConnection on websocket.connect → {"close": True} on the reply channel."""

    def consumer(message, **kwargs):
        raise DenyConnection()

    with make_layer([route("websocket.connect", consumer)]) as layer:
        Worker(layer, signal_handlers=False).handle(
            "websocket.connect", {"reply_channel": REPLY, "path": "/", "order": 0}
        )
        assert layer.receive(["daphne.response.w!"]) == (REPLY, {"close": True})


def test_deny_connection_elsewhere_is_logged_not_fatal(records):
    """C-32: DenyConnection outside websocket.connect → ValueError, logged; worker lives."""

    def consumer(message, **kwargs):
        raise DenyConnection()

    with make_layer([route("http.request", consumer)]) as layer:
        Worker(layer, signal_handlers=False).handle("http.request", {"reply_channel": REPLY})
    (record,) = [r for r in records.records if r.levelno == logging.ERROR]
    assert record.exc_info[0] is ValueError
    assert "non-websocket.connect handler" in str(record.exc_info[1])


def test_websocket_close_exception_runs(records):
    """C-32/C-66: a ChannelSocketException's run(message) is performed."""

    def consumer(message, **kwargs):
        raise WebsocketCloseException(4001)

    def bad(message, **kwargs):
        raise WebsocketCloseException()

    with make_layer([route("websocket.receive", consumer), route("http.request", bad)]) as layer:
        worker = Worker(layer, signal_handlers=False)
        worker.handle("websocket.receive", {"reply_channel": REPLY, "text": "x"})
        assert layer.receive(["daphne.response.w!"]) == (REPLY, {"close": 4001})
        # From a non-websocket channel run() raises; the worker logs it and carries on.
        worker.handle("http.request", {"reply_channel": REPLY})
    assert [r.exc_info[0] for r in records.records if r.levelno == logging.ERROR] == [ValueError]


def test_websocket_close_exception_validates_code():
    """C-66: code must be None, 1000 or 3000-4999."""
    for code in (999, 1001, 2999, 5000):
        with pytest.raises(ValueError, match="close code"):
            WebsocketCloseException(code)
    for code in (None, 1000, 3000, 4999):
        WebsocketCloseException(code)


def test_consume_later_requeues_with_retry_count():
    """C-32: ConsumeLater puts the message back with __retries__ incremented."""
    calls = []

    def consumer(message, **kwargs):
        calls.append(dict(message.content))
        if len(calls) == 1:
            raise ConsumeLater()

    with make_layer([route("test.in", consumer)]) as layer:
        worker = Worker(layer, signal_handlers=False)
        worker.handle("test.in", {"n": 1})
        channel, content = layer.receive(["test.in"])
        assert (channel, content) == ("test.in", {"n": 1, "__retries__": 1})
        worker.handle(channel, content)
        assert layer.receive(["test.in"]) == (None, None)
    assert len(calls) == 2


def test_consume_later_gives_up_after_message_retries(records):
    """C-31/C-32: at message_retries the message is doomed; beyond, warned and dropped."""
    doomed = []

    def consumer(message, **kwargs):
        doomed.append(getattr(message, "__doomed__", False))
        raise ConsumeLater()

    with make_layer([route("test.in", consumer)]) as layer:
        worker = Worker(layer, signal_handlers=False, message_retries=2)
        worker.handle("test.in", {"n": 1, "__retries__": 1})
        channel, content = layer.receive(["test.in"])
        assert content["__retries__"] == 2
        worker.handle(channel, content)
        assert layer.receive(["test.in"]) == (None, None)
    assert doomed == [False, True]
    (warning,) = records.messages(logging.WARNING)
    assert "Exceeded number of retries for message on channel test.in" in warning


def test_consume_later_on_full_channel_is_dropped_with_warning(records):
    """C-32: requeue retried up to 10 times on ChannelFull, then a WARNING naming the channel."""

    def consumer(message, **kwargs):
        raise ConsumeLater()

    with make_layer([route("test.in", consumer)], capacity=1) as layer:
        layer.send("test.in", {"occupying": True})
        Worker(layer, signal_handlers=False).handle("test.in", {"n": 1})
        assert layer.receive(["test.in"]) == ("test.in", {"occupying": True})
        assert layer.receive(["test.in"]) == (None, None)
    (warning,) = records.messages(logging.WARNING)
    assert "test.in" in warning and "dropped" in warning


def run_in_thread(worker):
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_run_loop_processes_until_stopped(records):
    """C-31: blocking receive loop; messages handled in order; stop() ends the loop."""
    seen = []
    done = threading.Event()

    def consumer(message, **kwargs):
        seen.append(message["n"])
        if len(seen) == 3:
            done.set()

    def boom(message, **kwargs):
        raise RuntimeError("consumer failure must not stop the loop")

    with make_layer([route("test.in", consumer), route("test.boom", boom)]) as layer:
        worker = Worker(layer, signal_handlers=False)
        thread = run_in_thread(worker)
        layer.send("test.in", {"n": 1})
        layer.send("test.boom", {})
        layer.send("test.in", {"n": 2})
        layer.send("test.in", {"n": 3})
        assert done.wait(10)
        worker.stop()
        thread.join(5)
        assert not thread.is_alive()
    assert seen == [1, 2, 3]
    assert "Listening on channels test.boom, test.in" in records.messages(logging.INFO)


class IgnoresBlock(ChannelLayer):
    """A third-party-style layer that ignores block=True and records when it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.empty_returns: list[float] = []

    def receive(self, channels, block=False):
        result = super().receive(channels, block=False)
        if result == (None, None):
            self.empty_returns.append(time.monotonic())
        return result


def test_layer_ignoring_block_does_not_make_the_worker_spin():
    """C-31 step 1: instant (None, None) → a short pause before the next receive."""
    handled = threading.Event()
    layer = IgnoresBlock()
    wrapper = ChannelLayerWrapper(layer, "default", [route("test.in", lambda m: handled.set())])
    worker = Worker(wrapper, signal_handlers=False)
    thread = run_in_thread(worker)
    try:
        while len(layer.empty_returns) < 5:
            assert thread.is_alive()
            handled.wait(0.05)  # let the worker go round a few times
        wrapper.send("test.in", {})
        assert handled.wait(10)
    finally:
        worker.stop()
        thread.join(5)
    gaps = [b - a for a, b in itertools.pairwise(layer.empty_returns)]
    # Every empty answer was followed by a pause (a lower bound: waits only get longer).
    assert min(gaps) >= Worker.nonblocking_pause * 0.9


def test_run_without_channels_returns_with_error(records):
    """C-29/C-31: nothing to listen on → an error line, no spinning loop."""
    with make_layer([route("test.in", lambda message: None)]) as layer:
        worker = Worker(layer, signal_handlers=False, exclude_channels=["test.*"])
        thread = run_in_thread(worker)
        thread.join(5)
        assert not thread.is_alive()
    assert records.messages(logging.ERROR) == [
        "No channels to listen on: the routing and the channel filters leave none"
    ]


def test_worker_group_threads_share_the_work():
    """C-33: a WorkerGroup runs n_threads workers; ready() covers all."""
    ready = []

    def receiver(sender, **kwargs):
        ready.append(sender)

    gate = threading.Barrier(3, timeout=10)
    threads_seen = set()
    all_done = threading.Semaphore(0)

    def consumer(message, **kwargs):
        threads_seen.add(threading.current_thread().name)
        gate.wait()  # three consumers in flight at once → three threads busy
        all_done.release()

    worker_ready.connect(receiver)
    try:
        with make_layer([route("test.in", consumer)]) as layer:
            group = WorkerGroup(layer, signal_handlers=False, n_threads=3)
            group.ready()
            assert len(ready) == 3 and len(group.workers) == 2
            assert all(not w.signal_handlers for w in group.workers)
            thread = run_in_thread(group)
            for n in range(3):
                layer.send("test.in", {"n": n})
            # The main worker and both sub-workers pass the barrier together.
            for _ in range(3):
                assert all_done.acquire(timeout=10)
            for sub in [group, *group.workers]:
                sub.stop()
            thread.join(10)
            assert not thread.is_alive()
    finally:
        worker_ready.disconnect(receiver)
    assert len(threads_seen) == 3


def test_worker_group_sigterm_handler_called_directly_stops_the_sub_workers():
    """C-33, issue 13: 1.x tests call `group.sigterm_handler(None, None)` while only the
    sub-workers run (each in a thread the test starts), then join those threads. Outside
    the group's own run() the handler marks every worker termed and returns; it does not
    raise SystemExit in the caller."""
    with make_layer([route("test.in", lambda message, **kwargs: None)]) as layer:
        group = WorkerGroup(layer, n_threads=4)
        threads = [run_in_thread(worker) for worker in group.workers]
        group.sigterm_handler(None, None)
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive()
    assert group.termed and all(worker.termed for worker in group.workers)


@pytest.mark.redis
def test_receive_outage_is_logged_once_and_recovers(redis_server, records):
    """C-31 step 1 / L-62: receive errors are logged once, retried, and recovery logged."""
    from asgi_redis import RedisChannelLayer
    from channels.asgi import ChannelLayerWrapper

    handled = threading.Event()

    def consumer(message, **kwargs):
        handled.set()

    layer = ChannelLayerWrapper(
        RedisChannelLayer(hosts=[redis_server.url]), "default", [route("test.in", consumer)]
    )
    redis_server.kill()
    worker = Worker(layer, signal_handlers=False)
    thread = run_in_thread(worker)
    try:
        assert records.wait_for("Cannot receive from channel layer")
        redis_server.restart()
        layer.send("test.in", {"after": "restart"})
        assert handled.wait(20)
        assert records.wait_for("works again")
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()
    errors = records.messages(logging.ERROR)
    assert len(errors) == 1 and "Cannot receive from channel layer" in errors[0]


class _FlakyReceiveLayer(ChannelLayer):
    """An in-memory layer whose receive fails twice: `error` first, then `then`."""

    def __init__(self, errors, **kwargs):
        super().__init__(**kwargs)
        self.errors = list(errors)

    def receive(self, channels, block=False):
        if self.errors:
            raise self.errors.pop(0)
        return super().receive(channels, block=block)


@pytest.mark.parametrize(
    ("error", "level", "text"),
    [
        # L-62: the layer's own outage error: one ERROR, no traceback, then recovery.
        (LayerUnavailable("backend away"), logging.ERROR, "Cannot receive from channel layer"),
        # Issue 16 item 5: anything else is a bug in the layer: logged with its
        # traceback, and the worker keeps receiving.
        (RuntimeError("layer bug"), logging.ERROR, "Receiving from channel layer"),
    ],
)
def test_receive_errors_are_waited_out_and_told_apart(records, error, level, text):
    done = threading.Event()
    seen = []

    def consumer(message, **kwargs):
        seen.append(message["n"])
        done.set()

    backend = _FlakyReceiveLayer([error])
    layer = ChannelLayerWrapper(backend, "default", [route("test.flaky", consumer)])
    backend.send("test.flaky", {"n": 1})
    worker = Worker(layer, signal_handlers=False)
    worker.receive_retry_first = worker.receive_retry_cap = 0.01
    thread = run_in_thread(worker)
    try:
        assert done.wait(10)
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert seen == [1]
    logged = [r for r in records.records if r.levelno == level and text in r.getMessage()]
    assert len(logged) == 1
    assert (logged[0].exc_info is not None) == isinstance(error, RuntimeError)
