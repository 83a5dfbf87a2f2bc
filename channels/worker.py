"""The worker: receive, route, run consumers, forever (C-28..C-33).

Each worker loops on a blocking `receive` (A-32): it never polls or sleeps while
messages flow. It survives anything a consumer raises and waits out a layer that
cannot be reached (L-62), and on SIGTERM/SIGINT it finishes the current message.
"""

from __future__ import annotations

import fnmatch
import logging
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from daphne.layer_api import unavailable_errors

from .announce import announcing
from .exceptions import ChannelSocketException, ConsumeLater, DenyConnection
from .layers.base import DELIVERY_KEY
from .message import Message
from .metrics import NULL_WORKER_METRICS
from .pending import Entry, pending_message_store
from .retry import REPLY_RETRY_CAP
from .signals import consumer_finished, consumer_started, worker_ready
from .utils import name_that_thing, reply_channel_of
from .worker_delivery import Deliveries
from .worker_outage import ReceiveOutage
from .worker_replies import ReplyCarrier

__all__ = ["Worker", "WorkerGroup"]

logger = logging.getLogger("django.channels")

# What the loop carries when the last consumer queued nothing but a message is held.
_NO_REPLIES: tuple[Any, list[Entry]] = (None, [])
# A message handled in less than this (seconds) lets the layer hold the next one beside
# it (`asgi_redis.lookahead`): a worker busy with slow consumers takes one at a time.
QUICK_MESSAGE = 0.005


class Worker:
    """Receives messages on the routed channels and runs their consumers (C-28)."""

    # A layer that ignores block=True may spin; pause this long after an instant miss.
    nonblocking_pause = 0.01
    # L-62: retry a failing receive after 0.1 s, doubling up to 1 s. C-31 says up to
    # 5 s; a refused connect costs microseconds, and with 5 s a Redis back after 3.2 s
    # would leave the worker idle until 6.3 s (issue 9, W6: echo within 1 s of a restart).
    receive_retry_first = 0.1
    receive_retry_cap = 1.0
    # ConsumeLater re-sends on ChannelFull (C-32).
    requeue_tries = 10
    requeue_retry_cap = REPLY_RETRY_CAP
    # Issue 17: an at-least-once message whose consumer raised is delivered again after
    # this back-off (seconds), doubled per delivery up to the cap.
    redelivery_delay_first = 0.5
    redelivery_delay_cap = 30.0

    def __init__(
        self,
        channel_layer: Any,
        callback: Callable | None = None,
        message_retries: int = 10,
        signal_handlers: bool = True,
        only_channels: Iterable[str] | None = None,
        exclude_channels: Iterable[str] | None = None,
    ) -> None:
        self.channel_layer = channel_layer
        self.callback = callback
        self.message_retries = message_retries
        self.signal_handlers = signal_handlers
        self.only_channels = only_channels
        self.exclude_channels = exclude_channels
        self.termed = False
        self.in_job = False
        # Set to interrupt the retry wait after a failing receive.
        self._stop = threading.Event()
        # The last consumer and the sends it queued, when `handle` left them for the
        # next receive to carry (`ReplyCarrier.send_then_receive`).
        self._replies: tuple[Any, list[Entry]] | None = None
        self._carrier = ReplyCarrier(self)
        # Issue 17 (ack, nack, hand back) and C-32 (requeue): see `Deliveries`.
        self._deliveries = deliveries = Deliveries(self)
        self._settle_delivery = deliveries.settle
        # Layers with send_many (Redis) can send the replies with the next receive;
        # only the receive loop does (`handle` called alone flushes them as ever).
        self._hands_over_replies = hasattr(channel_layer, "send_many")
        # Issue 17: a layer that sends an ack with the next receive, after the replies.
        self._acks_later = hasattr(channel_layer, "ack_later")
        self._looping = False
        # Whether run() logs "Listening on channels": once per group (issue 14).
        self.log_listening = True
        # Issue 18: a `WorkerMetrics` shared by the process's workers (runworker
        # --metrics-port sets it), else one that does nothing.
        self.metrics = NULL_WORKER_METRICS

    # -- setup --------------------------------------------------------------

    @property
    def metrics(self) -> Any:
        return self._metrics

    @metrics.setter
    def metrics(self, metrics: Any) -> None:
        # Per message the worker records into counters of its own (`_recorder`, one per
        # thread: no lock, no lost count), summed with the other threads' at scrape time.
        self._metrics = metrics
        recorder = getattr(metrics, "recorder", None)
        self._recorder = recorder() if recorder is not None else metrics

    def install_signal_handler(self) -> None:
        signal.signal(signal.SIGTERM, self.sigterm_handler)
        signal.signal(signal.SIGINT, self.sigterm_handler)

    def sigterm_handler(self, signo: int, stack_frame: Any) -> None:
        self.stop()
        if self.in_job:
            logger.info("Shutdown signal received while busy, will exit after current consumer")
        elif not self.parked(threading.get_ident()):
            # Between a wait and a message: ending here could leave an at-least-once
            # message leased and unhandled; the loop ends after this receive instead.
            logger.info("Shutdown signal received while receiving, exiting after this receive")
        else:
            logger.info("Shutdown signal received while idle, exiting")
            sys.exit(0)

    def parked(self, thread: int | None) -> bool:
        """Whether this worker, running in `thread`, may be ended now: it is idle and, on
        a layer that says so (``waiting_to_receive``), blocked in a receive's wait
        holding no message (C-33, issue 17)."""
        if self.in_job:
            return False
        check = getattr(self.channel_layer, "waiting_to_receive", None)
        return check is None or thread is None or check(thread)

    def stop(self) -> None:
        """Stop after the current message (if any)."""
        self.termed = True
        self._stop.set()

    def ready(self) -> None:
        """Called once the worker is set up (C-30)."""
        worker_ready.send(sender=self)

    def apply_channel_filters(self, channels: Iterable[str]) -> list[str]:
        """Keep names matching `only_channels`, then drop `exclude_channels` (C-29)."""
        channels = list(channels)
        if self.only_channels:
            channels = [
                name
                for name in channels
                if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.only_channels)
            ]
        if self.exclude_channels:
            channels = [
                name
                for name in channels
                if not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.exclude_channels)
            ]
        return channels

    # -- the loop -----------------------------------------------------------

    def run(self) -> None:
        """Receive and handle messages until stopped (C-31)."""
        if self.signal_handlers:
            self.install_signal_handler()
        channels = self.apply_channel_filters(self.channel_layer.router.channels)
        if not channels:
            # Receiving on nothing returns at once: the loop would only spin.
            logger.error("No channels to listen on: the routing and the channel filters leave none")
            return
        if self.log_listening:
            logger.info("Listening on channels %s", ", ".join(sorted(channels)))
        # Issue 14: the layer learns what the workers route (daphne skips unrouted
        # http.disconnect messages).
        with announcing(self.channel_layer, channels):
            self.receive_loop(channels, self.handle)

    def receive_loop(self, channels: list[str], handle: Callable[[str, dict], Any]) -> None:
        """Block on `channels` and pass each message to `handle` until stopped (C-31).

        A failing layer (L-62) is logged once per outage and retried with a growing
        delay; a layer refusing our arguments is a bug and raises.
        """
        self._looping = True
        try:
            self._receive_loop(channels, handle)
        finally:
            self._looping = False
            replies, self._replies = self._replies, None
            # Stopped right after a message: its replies go out (and any still
            # travelling are settled), a held message goes back.
            self._carrier.finish(replies)
            self._deliveries.flush_acks()

    def _receive_loop(self, channels: list[str], handle: Callable[[str, dict], Any]) -> None:
        receive = self.channel_layer.receive
        carrier = self._carrier
        send_then_receive = carrier.send_then_receive
        outage = ReceiveOutage(self)
        # The layer's outage errors (its `Unavailable`, L-62): waited out. Anything
        # else is a bug in the layer, logged with its traceback, and waited out too:
        # the worker never stops receiving.
        unavailable = unavailable_errors(self.channel_layer)
        while not self.termed:
            started = time.monotonic()
            try:
                replies = self._replies
                if replies is None and not carrier.holding:
                    channel, content = receive(channels, block=True)
                else:
                    # The last consumer's replies go out first (C-19), then in_job is off
                    # unless a message is held (`asgi_redis.lookahead`).
                    self._replies = None
                    channel, content = send_then_receive(replies or _NO_REPLIES, channels)
                    if channel is None and not self.termed:
                        channel, content = receive(channels, block=True)
            except (TypeError, AssertionError):
                # The layer refused our arguments (e.g. an invalid channel name in the
                # routing, A-13): a bug to report, not an outage to wait out.
                raise
            except unavailable as error:  # the backend is away (L-62)
                self._stop.wait(outage.unavailable(error))
                continue
            except Exception:
                self._stop.wait(outage.crashed())
                continue
            if outage.failing:
                outage.recovered()
            if channel is None:
                # Only a layer that ignored block=True returns at once; don't spin on it.
                if time.monotonic() - started < self.nonblocking_pause / 10:
                    self._stop.wait(self.nonblocking_pause)
                continue
            if DELIVERY_KEY in content and self.termed:
                # Issue 17: stopping; an at-least-once message not started goes back.
                self._deliveries.hand_back(channel, content)
                break
            self.in_job = True
            began = time.monotonic()
            try:
                handle(channel, content)
            finally:
                carrier.quick = time.monotonic() - began < QUICK_MESSAGE
                # Still busy while the replies wait for the next receive to carry them,
                # or a message is held: a shutdown signal then lets them go out first
                # and the held message go back (C-31).
                self.in_job = self._replies is not None or carrier.holding

    def handle(self, channel: str, content: dict) -> None:
        """Route and run one message; never raises for a consumer's error (C-31, C-32).

        An at-least-once message (issue 17) is acknowledged once the consumer returned
        and its replies went out; if the consumer raised, it is delivered again after a
        back-off (the layer dead-letters it after ``max_deliveries``).
        """
        message = Message(content, channel, self.channel_layer)
        if message.delivery_id is None:
            self._handle(channel, content, message)
            return
        failed = True
        try:
            failed = self._handle(channel, content, message)
        finally:
            self._settle_delivery(channel, message, failed, self._looping)

    def _handle(self, channel: str, content: dict, message: Message) -> bool:
        """Route and run `message`; True when its consumer raised an unhandled error."""
        if content.get("__retries__", 0) == self.message_retries:
            message.__doomed__ = True  # type: ignore[attr-defined]  # C-32's marker
        try:
            match = self.channel_layer.router.match(message)
        except Exception:  # a custom routing object's bug must not stop the worker
            logger.exception("Error routing message on %s:", channel)
            self._recorder.consumed(channel, "exception")
            return True
        if match is None:
            logger.error("Could not find match for message on %s! Check your routing.", channel)
            self._recorder.consumed(channel, "no_route")
            return False
        consumer, kwargs = match
        callback = self.callback
        if callback is not None:
            self._guarded(callback, lambda message: callback(channel, message), message)
        # Layers with send_many: the loop sends the consumer's batch with its next
        # receive (`ReplyCarrier.send_then_receive`); otherwise consumer_finished flushes it.
        # An at-least-once message is acknowledged with the next receive, after its
        # replies (`ack_later`); a layer without it sends them first (no carry).
        carry = (
            self._hands_over_replies
            and self._looping
            and (message.delivery_id is None or self._acks_later)
        )
        # Issue 18; with metrics off neither the clock nor the no-op hooks run (issue 16).
        metrics, outcome = self._recorder, "ok"
        timed = metrics.enabled
        if timed:
            began = time.perf_counter()
            metrics.started()
        try:
            consumer_started.send(sender=self.__class__, environ={})
            batch = pending_message_store.open_batch() if carry else None
            try:
                consumer(message, **kwargs)
            except BaseException:
                if batch is not None:
                    # Flushed at consumer_finished as always, before the exception's
                    # own handling (a DenyConnection's close) sends.
                    batch.hand_back()
                raise
            finally:
                try:
                    consumer_finished.send(sender=self.__class__)
                finally:
                    if batch is not None:
                        queued = pending_message_store.close_batch(batch)
                        if queued:
                            self._replies = (consumer, queued)
        except DenyConnection:
            self._guarded(consumer, self._deny, message)
        except ChannelSocketException as error:
            self._guarded(consumer, error.run, message)
        except ConsumeLater:
            outcome = "consume_later"
            self._guarded(consumer, self.consume_later, message)
        except Exception:  # a consumer's bug must not stop the worker
            outcome = "exception"
            logger.exception(
                "Error processing message with consumer %s:", name_that_thing(consumer)
            )
            return True
        finally:
            if timed:
                metrics.finished(channel, outcome, consumer, time.perf_counter() - began)
        return False

    def _guarded(self, consumer: Any, action: Callable[[Message], None], message: Message) -> None:
        # 1.1 let errors here escape and stop the worker; log them like consumer errors.
        # (Also used for the callback, which then names itself as the "consumer".)
        try:
            action(message)
        except Exception:
            logger.exception(
                "Error processing message with consumer %s:", name_that_thing(consumer)
            )

    @staticmethod
    def _deny(message: Message) -> None:
        if message.channel.name != "websocket.connect":
            raise ValueError("You cannot DenyConnection from a non-websocket.connect handler.")
        reply_channel_of(message, "DenyConnection").send({"close": True}, immediately=True)

    def consume_later(self, message: Message) -> None:
        """Put the message back on its channel, up to `message_retries` times (C-32)."""
        self._deliveries.requeue(message)


class WorkerGroup(Worker):
    """A worker in the calling thread plus `n_threads - 1` in daemon threads (C-33)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        n_threads = kwargs.pop("n_threads", multiprocessing.cpu_count())
        super().__init__(*args, **kwargs)
        sub_kwargs = dict(kwargs, signal_handlers=False)
        self.workers = [Worker(*args, **sub_kwargs) for _ in range(n_threads - 1)]
        for worker in self.workers:
            worker.log_listening = False  # one "Listening on channels" line, the group's
        self.threads: list[threading.Thread] = []
        self._signals_seen = 0
        # The thread running run(), whose receive a signal interrupts (None otherwise).
        self._running_in: int | None = None

    def ready(self) -> None:
        super().ready()
        for worker in self.workers:
            worker.ready()

    def sigterm_handler(self, signo: int, stack_frame: Any) -> None:
        if self._running_in != threading.get_ident():
            # Called directly, not as the signal handler of our own run() (1.x tests call
            # `group.sigterm_handler(None, None)` with only the sub-workers running, then
            # join their threads): mark every worker termed and return, as 1.1 did.
            for worker in (self, *self.workers):
                worker.stop()
            logger.info("Shutdown requested, the workers stop after their current message")
            return
        self._signals_seen += 1
        if self._signals_seen > 1:
            logger.warning("Second shutdown signal received, exiting now")
            sys.exit(1)
        for worker in (self, *self.workers):
            worker.stop()
        own = self.parked(threading.get_ident())
        if own and not self._unparked():
            logger.info("Shutdown signal received while idle, exiting")
            sys.exit(0)
        logger.info("Shutdown signal received, exiting after the current consumers finish")
        if own:
            # Leave our own blocking receive; run() then waits for the other threads.
            raise _GroupStopping()

    def run(self) -> None:
        for index, worker in enumerate(self.workers):
            thread = threading.Thread(
                target=worker.run, name=f"channels-worker-{index + 1}", daemon=True
            )
            thread.start()
            self.threads.append(thread)
        # Set until the busy threads are joined: a second signal while the main thread
        # waits for them must still exit at once (C-33).
        self._running_in = threading.get_ident()
        try:
            try:
                super().run()
            except _GroupStopping:
                pass
            if self.termed:
                self._wait_for_workers()
        finally:
            self._running_in = None

    def _unparked(self) -> list[tuple[Worker, threading.Thread]]:
        """Sub-workers still running that may not be ended now (`Worker.parked`)."""
        return [
            (worker, thread)
            for worker, thread in zip(self.workers, self.threads, strict=True)
            if thread.is_alive() and not worker.parked(thread.ident)
        ]

    def _wait_for_workers(self) -> None:
        # Busy sub-workers are waited for so their messages are not abandoned; one
        # between a wait and a message (a lease in flight, a message it is handing
        # back) for the round trips that takes. Idle ones stop at their next receive
        # timeout; the process may end them meanwhile. Checked again after every
        # wait: an idle one may have taken a message meanwhile.
        while True:
            unparked = self._unparked()
            if not unparked:
                return
            worker, thread = unparked[0]
            thread.join(None if worker.in_job else _RECEIVE_STEP)


# Seconds between looks at a sub-worker that is receiving but not waiting (a round trip).
_RECEIVE_STEP = 0.005


class _GroupStopping(BaseException):
    """Raised by the group's signal handler to leave the main thread's receive.

    Not an `Exception`: the receive loop takes those for a layer outage, and a clean
    stop would be logged as one (an ERROR with an empty reason, issue 14)."""
