"""The delay server (C-72..C-75, A-90, A-91).

The worker runs for real: in a thread on an in-memory layer for the timing and validation
checks, and as a `manage.py rundelay` subprocess on a private Redis for the restart check.
Rows live in the SQLite test database, which the worker's threads (and the subprocess)
open on their own connections, hence `transactional_db`. The `ChannelTestCase` classes at
the end run the worker in the test's own thread and transaction, as 1.x tests do (C-74).
"""

from __future__ import annotations

import io
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from channels.asgi import channel_layers
from channels.channel import Channel
from channels.delay.content import decode_content, encode_content
from channels.delay.models import DelayedMessage
from channels.delay.worker import Worker
from channels.layers.inmemory import ChannelLayer
from channels.test import ChannelTestCase, TransactionChannelTestCase
from tests.channels.helpers import fresh_layer
from tests.testproject.testapp.live import LiveProject

pytestmark = pytest.mark.django_db(transaction=True)

ALL_TYPES = {
    "bytes": b"\x00\x01binary\xff",
    "empty_bytes": b"",
    "text": "caf\u00e9 \U0001f600",
    "int": -(2**63),
    "big": 2**64 - 1,
    "float": 1.5e300,
    "inf": math.inf,
    "true": True,
    "false": False,
    "none": None,
    "list": [1, b"two", ["three"], {"four": 4}],
    "nested": {"a": {"b": {"c": b"deep"}}},
    # Dicts that look like the codec's own markers must come back as they were.
    "marker": {"__bytes__": "not base64!"},
    "marker2": {"__dict__": {"x": 1}, "y": b"z"},
}


class TestContentCodec:
    """A-91: content round-trips every A-6 value type through the TextField."""

    def test_round_trip(self):
        text = encode_content(ALL_TYPES)
        assert isinstance(text, str)
        decoded = decode_content(text)
        assert decoded == ALL_TYPES
        assert decoded["true"] is True and decoded["false"] is False
        assert isinstance(decoded["bytes"], bytes)

    def test_tuples_come_back_as_lists(self):
        assert decode_content(encode_content({"t": (1, b"2")})) == {"t": [1, b"2"]}

    @pytest.mark.parametrize(
        ("content", "match"),
        [
            ({"set": {1}}, r"content\['set'\] is a set"),
            ({"a": [object()]}, r"content\['a'\]\[0\] is a object"),
            ({"d": {1: "x"}}, "keys must be str"),
            ([1], "must be a dict"),
        ],
    )
    def test_unsupported_values_are_named(self, content, match):
        with pytest.raises(TypeError, match=match):
            encode_content(content)


@pytest.fixture
def layer() -> Iterator:
    with fresh_layer() as wrapper:
        yield wrapper


def stored(channel="dest", content=None, delay=1000) -> DelayedMessage:
    message = DelayedMessage(channel_name=channel, content=encode_content(content or {"n": 1}))
    message.delay = delay
    message.save()
    return message


class TestDelayedMessage:
    """C-73."""

    def test_delay_sets_due_date_and_is_due(self):
        before = timezone.now()
        later = stored(delay=60_000)
        past = stored(delay=-1)
        assert before + timedelta(seconds=60) <= later.due_date
        assert later.due_date <= timezone.now() + timedelta(seconds=60)
        assert 59_000 < later.delay <= 60_000
        assert list(DelayedMessage.objects.is_due()) == [past]

    def test_send_delivers_and_deletes(self, layer):
        message = stored(content=ALL_TYPES)
        assert message.send(channel_layer=layer) is True
        assert layer.receive(["dest"], block=False) == ("dest", ALL_TYPES)
        assert not DelayedMessage.objects.exists()

    def test_send_uses_the_default_layer(self, layer):
        stored().send()
        assert layer.receive(["dest"], block=False) == ("dest", {"n": 1})

    def test_send_is_at_most_once(self, layer):
        """A row another delay server already sent is not sent again."""
        message = stored()
        copy = DelayedMessage.objects.get(pk=message.pk)
        assert message.send(channel_layer=layer) is True
        assert copy.send(channel_layer=layer) is False
        assert layer.receive(["dest"], block=False)[0] == "dest"
        assert layer.receive(["dest"], block=False) == (None, None)

    def test_channel_full_requeues(self):
        with fresh_layer(capacity=1) as layer:
            layer.send("dest", {"already": "there"})
            message = stored(content={"n": 2}, delay=-5)
            assert message.send(channel_layer=layer, requeue_delay=3000) is False
            [again] = DelayedMessage.objects.all()
            assert 2000 < again.delay <= 3000
            assert decode_content(again.content) == {"n": 2}
            assert layer.receive(["dest"], block=False) == ("dest", {"already": "there"})
            assert layer.receive(["dest"], block=False) == (None, None)


class TestClaimDue:
    """Batch claims used by the worker's sender (A-91: at most once)."""

    def test_claims_due_rows_in_due_order_up_to_the_limit(self):
        later = stored(content={"n": "later"}, delay=-1000)
        first = stored(content={"n": "first"}, delay=-5000)
        pending = stored(content={"n": "pending"}, delay=60_000)
        claimed = DelayedMessage.objects.claim_due(limit=1)
        assert [m.pk for m in claimed] == [first.pk]
        assert [m.pk for m in DelayedMessage.objects.claim_due(limit=10)] == [later.pk]
        assert DelayedMessage.objects.claim_due(limit=10) == []
        assert list(DelayedMessage.objects.all()) == [pending]

    def test_deliver_sends_a_claimed_message(self, layer):
        stored(content={"n": 1}, delay=-1)
        [message] = DelayedMessage.objects.claim_due(limit=10)
        assert message.deliver(layer) is True
        assert layer.receive(["dest"], block=False) == ("dest", {"n": 1})
        assert not DelayedMessage.objects.exists()


class RunningWorker:
    """The delay worker running in a thread; stopped and joined (bounded) at exit."""

    def __init__(self, layer, sleep: float = 1) -> None:
        self.worker = Worker(layer, signal_handlers=False, database_sleep_duration=sleep)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        finally:
            # The thread's own database connection: Python 3.13 warns (ResourceWarning, an
            # error in this suite) about a sqlite3 connection that is never closed.
            connections.close_all()

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc) -> None:
        self.worker.stop()
        # The receive loop notices `termed` when its blocking receive times out (1 s).
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "delay worker did not stop"


def wait_for(layer, channel: str, timeout: float) -> tuple[float, dict | None]:
    """Block on ``channel`` (the layer's own blocking receive) for up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        name, content = layer.receive([channel], block=True)
        if name is not None:
            return time.monotonic(), content
    return time.monotonic(), None


class TestWorker:
    """C-74 and A-91 with the worker running."""

    def test_one_second_delay_arrives_between_one_and_two_seconds(self, layer):
        with RunningWorker(layer):
            sent = time.monotonic()
            layer.send("asgi.delay", {"channel": "dest", "delay": 1000, "content": ALL_TYPES})
            arrived, content = wait_for(layer, "dest", timeout=5)
        assert content == ALL_TYPES
        assert 1.0 <= arrived - sent < 2.0, f"arrived after {arrived - sent:.3f} s"
        assert not DelayedMessage.objects.exists()

    def test_messages_go_out_in_due_order(self, layer):
        with RunningWorker(layer, sleep=0.2):
            for n, delay in enumerate((900, 300, 600)):
                layer.send("asgi.delay", {"channel": "dest", "delay": delay, "content": {"n": n}})
            received = [wait_for(layer, "dest", timeout=5)[1] for _ in range(3)]
        assert received == [{"n": 1}, {"n": 2}, {"n": 0}]

    def test_pending_rows_are_sent_at_start(self, layer):
        """Rows stored before the worker started (e.g. by a previous run) go out."""
        stored(content={"n": "old"}, delay=-1000)
        with RunningWorker(layer):
            _, content = wait_for(layer, "dest", timeout=5)
        assert content == {"n": "old"}

    def test_a_burst_is_stored_and_sent_in_batches(self):
        """More requests than one batch, waiting before the worker starts: all arrive,
        and an invalid one among them costs only itself."""
        count = Worker.store_batch_size * 2 + 50
        with fresh_layer(capacity=count + 10) as big:
            for n in range(count):
                big.send("asgi.delay", {"channel": "dest", "delay": 1, "content": {"n": n}})
                if n == 120:
                    big.send("asgi.delay", {"channel": "dest", "delay": "soon", "content": {}})
            with RunningWorker(big, sleep=0.2):
                received = [wait_for(big, "dest", timeout=10)[1] for _ in range(count)]
        assert sorted(content["n"] for content in received) == list(range(count))
        assert not DelayedMessage.objects.exists()

    @pytest.mark.parametrize(
        ("request_", "reason"),
        [
            ({"delay": 10, "content": {}}, "missing key"),
            ({"channel": "dest", "content": {}}, "missing key"),
            ({"channel": "dest", "delay": 10}, "missing key"),
            ({"channel": "dest", "delay": 0, "content": {}}, "positive int"),
            ({"channel": "dest", "delay": -5, "content": {}}, "positive int"),
            ({"channel": "dest", "delay": "10", "content": {}}, "positive int"),
            ({"channel": "dest", "delay": True, "content": {}}, "positive int"),
            ({"channel": "dest", "delay": 10, "content": [1]}, "must be a dict"),
            ({"channel": "bad name!?", "delay": 10, "content": {}}, "invalid"),
        ],
    )
    def test_invalid_requests_are_logged_and_discarded(self, layer, caplog, request_, reason):
        """A-91: the loop survives a bad request; the next good one is still delivered."""
        with caplog.at_level(logging.ERROR, logger="django.channels"), RunningWorker(layer, 0.2):
            layer.send("asgi.delay", request_)
            layer.send("asgi.delay", {"channel": "dest", "delay": 1, "content": {"ok": 1}})
            _, content = wait_for(layer, "dest", timeout=5)
        assert content == {"ok": 1}
        [record] = [r for r in caplog.records if "Discarding" in r.getMessage()]
        assert reason in record.getMessage()
        assert not DelayedMessage.objects.exists()


class LogEvent(logging.Handler):
    """Sets an event when a record containing ``needle`` is logged (from any thread)."""

    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle = needle
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.event.set()


def test_database_outage_delays_but_loses_nothing(layer):
    """A request received while its table is unusable is stored once it is back."""
    from django.db import connection

    table = DelayedMessage._meta.db_table
    logger = logging.getLogger("django.channels")
    failed_store = LogEvent("Cannot store delayed message(s) for dest (retrying)")
    failed_read = LogEvent("Cannot read delayed messages (retrying)")
    logger.addHandler(failed_store)
    logger.addHandler(failed_read)
    try:
        with RunningWorker(layer, sleep=0.2):
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
            try:
                layer.send("asgi.delay", {"channel": "dest", "delay": 1, "content": {"n": 1}})
                assert failed_store.event.wait(timeout=10)
                assert failed_read.event.wait(timeout=10)
                assert layer.receive(["dest"], block=False) == (None, None)
            finally:
                with connection.cursor() as cursor:
                    cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
            _, content = wait_for(layer, "dest", timeout=15)
        assert content == {"n": 1}
    finally:
        logger.removeHandler(failed_store)
        logger.removeHandler(failed_read)


class TestRundelayCommand:
    """C-75."""

    def test_refuses_the_in_memory_layer(self, layer):
        assert isinstance(layer.channel_layer, ChannelLayer)
        with pytest.raises(CommandError, match="cannot span multiple processes"):
            call_command("rundelay")

    def test_a_non_positive_sleep_warns_as_1x_accepted_it(self, layer):
        """Issue 13: 1.x checked continuously for --sleep 0; a warning, not an error
        (the in-memory layer is then refused as ever)."""
        stderr = io.StringIO()
        with pytest.raises(CommandError, match="cannot span multiple processes"):
            call_command("rundelay", "--sleep", "0", stderr=stderr)
        assert "--sleep 0.0 is too short: checking every 0.01 s" in stderr.getvalue()


@pytest.mark.redis
@pytest.mark.slow
def test_pending_message_survives_a_rundelay_restart(redis_server, tmp_path):
    """A-91: requests are stored durably; a restarted `manage.py rundelay` sends them."""
    from asgi_redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[redis_server.url])
    project = LiveProject(redis_server, tmp_path)
    project.migrate()
    try:
        first, output = project.manage("rundelay", "-v", "2")
        output.wait_for("Listening on asgi.delay", timeout=30)
        sent = time.monotonic()
        layer.send("asgi.delay", {"channel": "dest", "delay": 3000, "content": ALL_TYPES})
        output.wait_for("Stored delayed message for dest", timeout=30)
        assert project.stop(first) == 0, project.output()
        assert layer.receive(["dest"], block=False) == (None, None), "sent before its time"

        _, output = project.manage("rundelay")
        output.wait_for("Listening on asgi.delay", timeout=30)
        arrived, content = wait_for(layer, "dest", timeout=15)
        assert content == ALL_TYPES, project.output()
        assert arrived - sent >= 3.0

        # The same bound as in-process (C-74), through Redis and the real command.
        sent = time.monotonic()
        layer.send("asgi.delay", {"channel": "dest", "delay": 1000, "content": {"n": 2}})
        arrived, content = wait_for(layer, "dest", timeout=15)
        assert content == {"n": 2}
        assert 1.0 <= arrived - sent < 2.0, f"arrived after {arrived - sent:.3f} s"
    finally:
        project.close()


class DelayWithChannelTestCase(TransactionChannelTestCase):
    """The project's test utilities drive the delay server without threads (C-67)."""

    def test_store_then_send_when_due(self):
        Channel("asgi.delay").send({"channel": "dest", "delay": 60_000, "content": ALL_TYPES})
        request = self.get_next_message("asgi.delay", require=True)
        worker = Worker(channel_layers["default"], signal_handlers=False)
        [message] = worker.store_many([request.content])
        self.assertEqual(DelayedMessage.objects.claim_due(limit=10), [], "not due yet")

        DelayedMessage.objects.update(due_date=timezone.now())
        [due] = DelayedMessage.objects.claim_due(limit=10)
        self.assertEqual(due.pk, message.pk)
        self.assertTrue(due.deliver(channel_layers["default"]))
        self.assertEqual(self.get_next_message("dest", require=True).content, ALL_TYPES)
        self.assertFalse(DelayedMessage.objects.exists())


class CountedPassesWorker(Worker):
    """The 1.x tests' worker: ``termed = n`` lets ``run()`` make n passes of its loop."""

    def get_termed(self):
        if not self._passes:
            return True
        self._passes -= 1
        return False

    def set_termed(self, value):
        self._passes = value

    termed = property(get_termed, set_termed)


def make_due() -> None:
    """Move every stored message's due date to now (instead of waiting for it)."""
    DelayedMessage.objects.update(due_date=timezone.now())


class DelayWorkerInsideTestCaseTests(ChannelTestCase):
    """C-74 (issue 13): the worker runs inside a test's transaction, sends due messages
    from the thread calling run(), and run() can be called again on the same instance,
    one pass per read of `termed`, as the 1.x test suite drives it."""

    def worker(self, passes: int) -> CountedPassesWorker:
        worker = CountedPassesWorker(channel_layers["default"], signal_handlers=False)
        worker.termed = passes
        return worker

    def test_invalid_message_is_not_stored(self):
        Channel("asgi.delay").send({"test": "value"}, immediately=True)
        with self.assertLogs("django.channels", logging.ERROR) as logs:
            self.worker(1).run()
        self.assertIn("missing key(s) channel, content, delay", logs.output[0])
        self.assertEqual(DelayedMessage.objects.count(), 0)
        self.assertIsNone(self.get_next_message("asgi.delay"))

    def test_delay_message_stored_then_sent_by_a_second_run(self):
        Channel("asgi.delay").send(
            {"channel": "test", "delay": 60_000, "content": {"test": "value"}}, immediately=True
        )
        worker = self.worker(1)
        worker.run()
        self.assertEqual(DelayedMessage.objects.count(), 1)
        self.assertIsNone(self.get_next_message("test"))

        make_due()
        worker.termed = 1
        worker.run()  # the same instance again; it sees this test's uncommitted rows
        self.assertEqual(DelayedMessage.objects.count(), 0)
        message = self.get_next_message("test", require=True)
        self.assertEqual(message.content, {"test": "value"})

    def test_channel_full_requeues_instead_of_dropping(self):
        """C-73, C-74: more due messages than the destination holds (capacity 10)."""
        request = {"channel": "test", "delay": 60_000, "content": {"test": "value"}}
        for _ in range(10):
            Channel("asgi.delay").send(request, immediately=True)
        self.worker(10).run()
        Channel("asgi.delay").send(request, immediately=True)
        worker = self.worker(1)
        worker.run()
        self.assertEqual(DelayedMessage.objects.count(), 11)

        make_due()
        worker.termed = 1
        before = timezone.now()
        worker.run()
        self.assertEqual(DelayedMessage.objects.count(), 1)
        for _ in range(10):
            self.get_next_message("test", require=True)
        self.assertIsNone(self.get_next_message("test"))
        [requeued] = DelayedMessage.objects.all()
        self.assertGreaterEqual(requeued.due_date, before + timedelta(seconds=1))

    def test_each_run_checks_for_due_messages_first(self):
        """Rows due before run() are sent on its first pass, even right after another run."""
        DelayedMessage.objects.create(
            channel_name="test", content=encode_content({"n": 1}), due_date=timezone.now()
        )
        worker = self.worker(1)
        worker.run()
        self.assertEqual(self.get_next_message("test", require=True).content, {"n": 1})
        DelayedMessage.objects.create(
            channel_name="test", content=encode_content({"n": 2}), due_date=timezone.now()
        )
        worker.termed = 1
        worker.run()
        self.assertEqual(self.get_next_message("test", require=True).content, {"n": 2})


class DelayedMessageAsIn1xTests(ChannelTestCase):
    """C-73 (issue 13): the model used the way 1.x tests use it: `delay` given to the
    constructor, plain JSON content, `send()` leaving the instance without a pk."""

    def message(self, delay: int) -> DelayedMessage:
        message = DelayedMessage(
            content=json.dumps({"test": "value"}), channel_name="test", delay=delay
        )
        message.save()
        return message

    def test_delay_given_to_the_constructor(self):
        message = self.message(1000)
        self.assertEqual(message.delay, 1000)
        self.assertEqual(DelayedMessage.objects.is_due().count(), 0)
        self.message(0)
        self.assertEqual(DelayedMessage.objects.is_due().count(), 1)

    def test_send_deletes_the_row_and_clears_the_pk(self):
        message = self.message(0)
        message.send()
        self.assertIsNone(message.pk)
        self.assertFalse(DelayedMessage.objects.exists())
        self.assertEqual(self.get_next_message("test", require=True).content, {"test": "value"})

    def test_send_to_a_full_channel_keeps_the_message(self):
        channel = Channel("test")
        for _ in range(channel.channel_layer.capacity):
            channel.send({"test": "value"}, immediately=True)
        message = self.message(0)
        message.send()
        self.assertEqual(DelayedMessage.objects.count(), 1)
        self.assertEqual(DelayedMessage.objects.is_due().count(), 0)
        self.assertEqual(message.delay, 1000)
