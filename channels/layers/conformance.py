"""The conformance suite every channel layer runs (A-54..A-72, A-94..A-99).

Subclass `ConformanceTestCase`, set `channel_layer` and `expiry_delay` (and,
where they apply, `capacity_limit` and `receive_tries`), and run it with
unittest or pytest. Backends construct the layer with
``expiry=1, group_expiry=2, capacity=5`` (L-58).
"""

from __future__ import annotations

import asyncio
import threading
import time
import unittest
from typing import Any

from .base import BaseChannelLayer

__all__ = ["ConformanceTestCase", "run_reactor_in_thread"]

_reactor_lock = threading.Lock()
_reactor_thread: threading.Thread | None = None


def run_reactor_in_thread() -> Any:
    """Start Twisted's global reactor in a daemon thread (once) and return it.

    Tests talk to it with `twisted.internet.threads.blockingCallFromThread`;
    the reactor cannot be restarted, so every test in a process shares it.
    """
    global _reactor_thread
    from twisted.internet import reactor as installed

    reactor: Any = installed  # the module attribute is typed as a module, not a reactor

    with _reactor_lock:
        if _reactor_thread is None:
            started = threading.Event()
            reactor.callWhenRunning(started.set)
            _reactor_thread = threading.Thread(
                target=reactor.run,
                kwargs={"installSignalHandlers": False},
                name="twisted-reactor",
                daemon=True,
            )
            _reactor_thread.start()
            if not started.wait(10):
                raise RuntimeError("The Twisted reactor did not start within 10 s")
    return reactor


class ConformanceTestCase(unittest.TestCase):
    """Behaviour every ASGI-1 layer must show (A-54)."""

    channel_layer: BaseChannelLayer | None = None
    expiry_delay: float | None = None
    capacity_limit: int | None = None
    receive_tries = 1
    blocking_receive = True

    def setUp(self) -> None:
        if type(self) is ConformanceTestCase:
            self.skipTest("ConformanceTestCase is a base class; subclass it for a layer")
        if self.channel_layer is None:
            raise ValueError("Set channel_layer on your ConformanceTestCase subclass")
        if self.expiry_delay is None:
            raise ValueError("Set expiry_delay on your ConformanceTestCase subclass")
        if "flush" in self.channel_layer.extensions:
            self.channel_layer.flush()
        super().setUp()

    # -- helpers ---------------------------------------------------------------
    @property
    def _layer(self) -> BaseChannelLayer:
        """`channel_layer`, known to be set (`setUp` refuses to run without it)."""
        layer = self.channel_layer
        if layer is None:
            raise ValueError("Set channel_layer on your ConformanceTestCase subclass")
        return layer

    def receive(self, channels: list[str]) -> tuple[str | None, Any]:
        for _ in range(self.receive_tries):
            channel, message = self._layer.receive(channels)
            if channel is not None:
                return channel, message
        return None, None

    def skip_if_no_extension(self, extension: str) -> None:
        if extension not in self._layer.extensions:
            self.skipTest(f"layer does not list the {extension!r} extension")

    def skip_without_capacity(self) -> int:
        if self.capacity_limit is None:
            self.skipTest("no capacity_limit set for this layer")
        return self.capacity_limit

    # -- A-55 .. A-72 ----------------------------------------------------------

    def test_send_recv(self) -> None:
        """A-55"""
        layer = self._layer
        layer.send("sr_test", {"value": "blue"})
        layer.send("sr_test", {"value": "green"})
        layer.send("sr_test", {"value": "yellow"})
        layer.send("sr_test2", {"value": "red"})
        values = set()
        for _ in range(3):
            channel, message = self.receive(["sr_test"])
            self.assertEqual(channel, "sr_test")
            values.add(message["value"])
        self.assertEqual(values, {"blue", "green", "yellow"})
        self.assertEqual(self.receive(["sr_test", "sr_test2"]), ("sr_test2", {"value": "red"}))

    def test_process_local_receive(self) -> None:
        """A-56"""
        layer = self._layer
        layer.send("spr_test!a", {"value": "blue"})
        self.assertEqual(self.receive(["spr_test!"]), ("spr_test!a", {"value": "blue"}))
        layer.send("spr_test!b", {"value": "green"})
        self.assertEqual(self.receive(["spr_test!"]), ("spr_test!b", {"value": "green"}))

    def test_process_local_receive_error(self) -> None:
        """A-57"""
        with self.assertRaises(TypeError):
            self._layer.receive(["spr_test!c"])

    def test_message_expiry(self) -> None:
        """A-58"""
        self._layer.send("me_test", {"value": "blue"})
        time.sleep(self.expiry_delay or 0.0)  # set: checked in setUp
        self.assertEqual(self.receive(["me_test"]), (None, None))

    def test_new_channel_single_reader(self) -> None:
        """A-59"""
        layer = self._layer
        first = layer.new_channel("test.foo?")
        self.assertIsInstance(first, str)
        self.assertEqual(first.count("?"), 1)
        self.assertFalse(first.endswith("?"))
        layer.send(first, {"value": "blue"})
        second = layer.new_channel("test.foo?")
        self.assertNotEqual(first, second)
        self.assertEqual(self.receive([first, second]), (first, {"value": "blue"}))

    def test_new_channel_failures(self) -> None:
        """A-60"""
        with self.assertRaises(AssertionError):
            self._layer.new_channel("test!")
        with self.assertRaises(AssertionError):
            self._layer.new_channel("test.foo")

    def test_strings(self) -> None:
        """A-61: bytes stay bytes, str stays str, astral characters survive."""
        message = {
            "values": {
                "utf-bytes": b"\xc2\xa3",
                "unicode": "\u00a3",
                "emoji": "\U0001f612",
                "binary": b"\x01\x00\x03\x21",
            }
        }
        self._layer.send("str_test", message)
        channel, received = self.receive(["str_test"])
        self.assertEqual(channel, "str_test")
        for key, value in message["values"].items():
            self.assertEqual(received["values"][key], value)
            self.assertIs(type(received["values"][key]), type(value))

    def test_groups(self) -> None:
        """A-62"""
        self.skip_if_no_extension("groups")
        layer = self._layer
        layer.group_add("tgroup", "tg_test")
        layer.group_add("tgroup", "tg_test2")
        layer.group_add("tgroup", "tg_test3")
        layer.group_discard("tgroup", "tg_test3")
        layer.send_group("tgroup", {"value": "orange"})
        self.assertEqual(self.receive(["tg_test"]), ("tg_test", {"value": "orange"}))
        self.assertEqual(self.receive(["tg_test2"]), ("tg_test2", {"value": "orange"}))
        self.assertEqual(self.receive(["tg_test3"]), (None, None))

    def test_groups_process(self) -> None:
        """A-63"""
        self.skip_if_no_extension("groups")
        layer = self._layer
        layer.group_add("tgroup", "tgp!test")
        layer.group_add("tgroup", "tgp!test2")
        layer.group_add("tgroup", "tgp!test3")
        layer.group_discard("tgroup", "tgp!test2")
        layer.send_group("tgroup", {"value": "orange"})
        names = []
        for _ in range(2):
            channel, message = self.receive(["tgp!"])
            self.assertIn(channel, {"tgp!test", "tgp!test3"})
            self.assertEqual(message, {"value": "orange"})
            names.append(channel)
        self.assertEqual(sorted(names), ["tgp!test", "tgp!test3"])
        self.assertEqual(self.receive(["tgp!"]), (None, None))

    def test_group_channels(self) -> None:
        """A-64"""
        self.skip_if_no_extension("groups")
        layer = self._layer
        layer.group_add("tgroup", "tg_test")
        layer.group_add("tgroup", "tg_test2")
        layer.group_add("tgroup", "tg_test3")
        self.assertEqual(set(layer.group_channels("tgroup")), {"tg_test", "tg_test2", "tg_test3"})
        layer.group_discard("tgroup", "tg_test2")
        self.assertEqual(set(layer.group_channels("tgroup")), {"tg_test", "tg_test3"})

    def test_flush(self) -> None:
        """A-65"""
        self.skip_if_no_extension("flush")
        self._layer.send("fl_test", {})
        self._layer.flush()
        self.assertEqual(self.receive(["fl_test"]), (None, None))

    def test_flush_groups(self) -> None:
        """A-66"""
        self.skip_if_no_extension("groups")
        self.skip_if_no_extension("flush")
        layer = self._layer
        layer.group_add("fl_group", "fl_test")
        layer.send_group("fl_group", {})
        layer.flush()
        self.assertEqual(self.receive(["fl_test"]), (None, None))

    def test_group_expiry(self) -> None:
        """A-67"""
        self.skip_if_no_extension("groups")
        layer = self._layer
        group_expiry = getattr(layer, "group_expiry", None)
        if group_expiry is None:
            self.fail("The layer has no group_expiry attribute (A-45)")
        if group_expiry > 20:
            self.skipTest("group_expiry is too long to wait for")
        layer.group_add("tgexpiry", "tg_test")
        time.sleep(group_expiry + 1)
        layer.send_group("tgexpiry", {"value": "blue"})
        self.assertEqual(self.receive(["tg_test"]), (None, None))

    def test_capacity(self) -> None:
        """A-68"""
        limit = self.skip_without_capacity()
        for _ in range(limit):
            self._layer.send("cap_test", {"hey": "there"})
        with self.assertRaises(self._layer.ChannelFull):
            self._layer.send("cap_test", {"hey": "there"})

    def test_capacity_process(self) -> None:
        """A-69"""
        limit = self.skip_without_capacity()
        if limit < 2:
            self.skipTest("capacity_limit below 2")
        for index in range(limit):
            self._layer.send(f"capp!{index}", {"hey": "there"})
        with self.assertRaises(self._layer.ChannelFull):
            self._layer.send("capp!final", {"hey": "there"})

    def test_capacity_group(self) -> None:
        """A-70: a full member never makes send_group raise."""
        self.skip_if_no_extension("groups")
        limit = self.skip_without_capacity()
        self._layer.group_add("tgroup", "cap_test")
        for _ in range(limit + 1):
            self._layer.send_group("tgroup", {"hey": "there"})

    def test_exceptions(self) -> None:
        """A-71"""
        self.assertTrue(hasattr(self._layer, "MessageTooLarge"))
        self.assertTrue(hasattr(self._layer, "ChannelFull"))
        self.assertIs(self._layer.ChannelFull, BaseChannelLayer.ChannelFull)
        self.assertIs(self._layer.MessageTooLarge, BaseChannelLayer.MessageTooLarge)

    def test_message_alteration_after_send(self) -> None:
        """A-72"""
        message = {"value": [1, 2, 3]}
        self._layer.send("mas_test", message)
        message["value"][0] = 4
        self.assertEqual(self.receive(["mas_test"]), ("mas_test", {"value": [1, 2, 3]}))

    # -- send_many_then_receive (an extension every layer has; issue 9) ---------

    def test_send_many_then_receive(self) -> None:
        """Sends in order, one outcome each, then a receive like `receive`."""
        layer = self._layer
        layer.send("smr_in", {"value": "waiting"})
        pairs = [("smr_out", {"n": 1}), ("smr_out", {"n": 2}), ("smr_out2", {"n": 3})]
        outcomes, received = layer.send_many_then_receive(pairs, ["smr_in"])
        self.assertEqual(outcomes, [None, None, None])
        if received[0] is None:  # several shards: a non-blocking look may miss (L-26)
            received = self.receive(["smr_in"])
        self.assertEqual(received, ("smr_in", {"value": "waiting"}))
        self.assertEqual([self.receive(["smr_out"])[1]["n"] for _ in range(2)], [1, 2])
        self.assertEqual(self.receive(["smr_out2"]), ("smr_out2", {"n": 3}))

    def test_send_many_then_receive_nothing_waiting(self) -> None:
        outcomes, received = self._layer.send_many_then_receive([], ["smr_empty"])
        self.assertEqual((outcomes, received), ([], (None, None)))
        outcomes, received = self._layer.send_many_then_receive(
            [("smr_other", {"n": 1})], ["smr_empty"]
        )
        self.assertEqual((outcomes, received), ([None], (None, None)))

    def test_send_many_then_receive_own_message(self) -> None:
        """The sends happen before the receive: a process-specific message sent in the
        call comes back from it (blocking, where the layer blocks)."""
        outcomes, received = self._layer.send_many_then_receive(
            [("smr_proc!a", {"value": "mine"})], ["smr_proc!"], block=self.blocking_receive
        )
        self.assertEqual(outcomes, [None])
        self.assertEqual(received, ("smr_proc!a", {"value": "mine"}))

    def test_send_many_then_receive_full(self) -> None:
        """A-37: a full channel's messages come back as ChannelFull, the others are sent."""
        limit = self.skip_without_capacity()
        layer = self._layer
        for _ in range(limit):
            layer.send("smr_full!x", {"hey": "there"})
        pairs = [("smr_full!x", {"n": 1}), ("smr_room!x", {"n": 2}), ("smr_full!x", {"n": 3})]
        outcomes, received = layer.send_many_then_receive(pairs, ["smr_room!"])
        self.assertIsInstance(outcomes[0], layer.ChannelFull)
        self.assertIsNone(outcomes[1])
        self.assertIsInstance(outcomes[2], layer.ChannelFull)
        self.assertEqual(received, ("smr_room!x", {"n": 2}))

    def test_send_many_then_receive_bad_name(self) -> None:
        """A-13: a bad name to receive on raises (a TypeError) before anything is sent."""
        with self.assertRaises(TypeError):
            self._layer.send_many_then_receive([("smr_bad", {"n": 1})], ["bad name"])
        with self.assertRaises(TypeError):
            self._layer.send_many_then_receive([("smr_bad", {"n": 1})], "smr_bad")
        self.assertEqual(self.receive(["smr_bad"]), (None, None))

    # -- A-94 .. A-99 ----------------------------------------------------------

    def test_blocking_receive(self) -> None:
        """A-94: a blocking receive is woken by a send from another thread."""
        if not self.blocking_receive:
            self.skipTest("layer does not honour block=True")
        timer = threading.Timer(0.2, self._layer.send, ("br_test", {"value": "late"}))
        timer.start()
        try:
            channel, message = self._layer.receive(["br_test"], block=True)
        finally:
            timer.join(10)
        self.assertEqual((channel, message), ("br_test", {"value": "late"}))

    def test_broadcast_into_one_process(self) -> None:
        """A-95 / A-93: 2 x capacity members of one P! all get the broadcast."""
        self.skip_if_no_extension("groups")
        limit = self.skip_without_capacity()
        layer = self._layer
        members = {f"gb!{index}" for index in range(2 * limit)}
        for member in members:
            layer.group_add("gb_group", member)
        layer.send_group("gb_group", {"value": "all"})
        seen = []
        for _ in members:
            channel, message = self.receive(["gb!"])
            self.assertEqual(message, {"value": "all"})
            seen.append(channel)
        self.assertEqual(sorted(seen), sorted(members))
        self.assertEqual(self.receive(["gb!"]), (None, None))

    def test_refusals(self) -> None:
        """A-96: unsupported types and oversized messages are refused; 1 MiB fits."""
        layer = self._layer
        with self.assertRaises(TypeError):
            layer.send("ref_test", {"value": {1, 2}})
        if getattr(layer, "max_message_size", None) is None:
            return
        with self.assertRaises(layer.MessageTooLarge):
            layer.send("ref_test", {"body": b"x" * (2 * 1024 * 1024)})
        self.assertEqual(self.receive(["ref_test"]), (None, None))
        body = bytes(range(256)) * 4096
        layer.send("ref_test", {"body": body, "more_content": False, "status": 200})
        channel, message = self.receive(["ref_test"])
        self.assertEqual(channel, "ref_test")
        self.assertEqual(message["body"], body)

    def test_statistics(self) -> None:
        """A-97"""
        self.skip_if_no_extension("statistics")
        layer: Any = self._layer  # statistics is an extension: not on the base class
        layer.send("st_a", {"n": 1})
        layer.send("st_a", {"n": 2})
        stats = layer.channel_statistics("st_a")
        self.assertEqual(stats["messages_count"], 2)
        self.assertEqual(stats["messages_pending"], 2)
        if self.capacity_limit is None:
            return
        for _ in range(self.capacity_limit):
            layer.send("st_full", {})
        with self.assertRaises(layer.ChannelFull):
            layer.send("st_full", {})
        layer.group_add("st_group", "st_full")
        layer.send_group("st_group", {})
        self.assertEqual(layer.channel_statistics("st_full")["channel_full_count"], 2)
        self.assertEqual(layer.global_statistics()["channel_full_count"], 2)

    def test_receive_twisted(self) -> None:
        """A-98: receive_twisted fires with messages in send order."""
        self.skip_if_no_extension("twisted")
        from twisted.internet.threads import blockingCallFromThread

        reactor = run_reactor_in_thread()
        layer: Any = self._layer  # twisted is an extension: not on the base class
        layer.send("rt_test", {"n": 1})
        layer.send("rt_test", {"n": 2})
        first = blockingCallFromThread(reactor, layer.receive_twisted, ["rt_test"])
        second = blockingCallFromThread(reactor, layer.receive_twisted, ["rt_test"])
        self.assertEqual(first, ("rt_test", {"n": 1}))
        self.assertEqual(second, ("rt_test", {"n": 2}))

    def test_receive_async(self) -> None:
        """A-99"""
        self.skip_if_no_extension("asyncio")
        layer: Any = self._layer  # asyncio is an extension: not on the base class
        layer.send("ra_test", {"n": 1})
        result = asyncio.run(layer.receive_async(["ra_test"]))
        self.assertEqual(result, ("ra_test", {"n": 1}))

    # -- at-least-once (issue 17): layers listing the extension ------------------
    #
    # The layer must be built with ``at_least_once=["alo.*"]``, ``max_deliveries=3``
    # and an ``ack_timeout`` of at most 2 seconds.

    def _alo_layer(self) -> Any:
        self.skip_if_no_extension("at_least_once")
        return self._layer

    def _alo_receive(self, channels: list[str], wait: float = 0.0) -> tuple[str | None, Any]:
        """Receive, blocking until a message arrives or `wait` (+ 10 s margin) passes."""
        layer = self._alo_layer()
        give_up = time.monotonic() + wait + 10
        channel, message = self.receive(channels)
        while channel is None and time.monotonic() < give_up:
            channel, message = layer.receive(channels, block=True)
        return channel, message

    @staticmethod
    def _delivery(message: dict[str, Any]) -> dict[str, Any]:
        from .base import DELIVERY_KEY

        delivery: dict[str, Any] = message.pop(DELIVERY_KEY)
        return delivery

    def test_alo_ack(self) -> None:
        """Issue 17: a delivery carries id and count 1; acked, it is gone."""
        layer = self._alo_layer()
        layer.send("alo.ack", {"n": 1})
        channel, message = self._alo_receive(["alo.ack"])
        self.assertEqual(channel, "alo.ack")
        delivery = self._delivery(message)
        self.assertEqual((message, delivery["count"]), ({"n": 1}, 1))
        self.assertTrue(layer.ack("alo.ack", delivery["id"]))
        self.assertFalse(layer.ack("alo.ack", delivery["id"]))
        self.assertEqual(self.receive(["alo.ack"]), (None, None))

    def test_alo_other_channels_untouched(self) -> None:
        """Issue 17: a channel not matching at_least_once carries no delivery."""
        layer = self._alo_layer()
        layer.send("plain_alo", {"n": 1})
        layer.send("alo.mixed", {"n": 2})
        seen = dict([self._alo_receive(["plain_alo", "alo.mixed"]) for _ in range(2)])
        self.assertEqual(seen["plain_alo"], {"n": 1})
        self.assertEqual(seen["alo.mixed"]["n"], 2)
        self.assertIn("id", self._delivery(seen["alo.mixed"]))

    def test_alo_nack_redelivers_first(self) -> None:
        """Issue 17: a nacked message comes back before later ones, counted."""
        layer = self._alo_layer()
        layer.send("alo.nack", {"n": 1})
        layer.send("alo.nack", {"n": 2})
        _, message = self._alo_receive(["alo.nack"])
        self.assertTrue(layer.nack("alo.nack", self._delivery(message)["id"], 0))
        _, again = self._alo_receive(["alo.nack"])
        delivery = self._delivery(again)
        self.assertEqual((again, delivery["count"]), ({"n": 1}, 2))
        layer.ack("alo.nack", delivery["id"])
        _, second = self._alo_receive(["alo.nack"])
        self.assertEqual(self._delivery(second)["count"], 1)
        self.assertEqual(second, {"n": 2})
        if "statistics" in layer.extensions:
            self.assertEqual(layer.global_statistics()["redelivered_count"], 1)

    def test_alo_lease_timeout_redelivers(self) -> None:
        """Issue 17: a delivery never acknowledged comes back after ack_timeout."""
        layer = self._alo_layer()
        layer.send("alo.timeout", {"n": 1})
        _, message = self._alo_receive(["alo.timeout"])
        first = self._delivery(message)
        started = time.monotonic()
        _, again = self._alo_receive(["alo.timeout"], wait=3)
        self.assertIsNotNone(again)
        self.assertGreater(time.monotonic() - started, 0.5)
        delivery = self._delivery(again)
        self.assertEqual((again, delivery["count"]), ({"n": 1}, 2))
        self.assertFalse(layer.ack("alo.timeout", first["id"]))  # that lease ended
        self.assertTrue(layer.ack("alo.timeout", delivery["id"]))

    def test_alo_release_is_not_counted(self) -> None:
        """Issue 17: a message handed back unstarted keeps its delivery count."""
        layer = self._alo_layer()
        layer.send("alo.release", {"n": 1})
        _, message = self._alo_receive(["alo.release"])
        self.assertTrue(layer.release("alo.release", self._delivery(message)["id"]))
        _, again = self._alo_receive(["alo.release"])
        self.assertEqual(self._delivery(again)["count"], 1)

    def test_alo_dead_letters(self) -> None:
        """Issue 17: after max_deliveries the message is a dead letter: listed,
        counted, requeued (counts start over) and purged."""
        layer = self._alo_layer()
        layer.send("alo.dead", {"n": 9})
        for count in range(1, 4):
            _, message = self._alo_receive(["alo.dead"])
            self.assertIsNotNone(message, f"delivery {count} did not come")
            delivery = self._delivery(message)
            self.assertEqual(delivery["count"], count)
            # The last delivery's nack dead-letters at once, whatever its delay.
            layer.nack("alo.dead", delivery["id"], 0 if count < 3 else 30)
        self.assertEqual(self.receive(["alo.dead"]), (None, None))
        letters = layer.dead_letters("alo.*")
        self.assertEqual(
            [(letter.channel, letter.content, letter.deliveries) for letter in letters],
            [("alo.dead", {"n": 9}, 3)],
        )
        if "statistics" in layer.extensions:
            self.assertEqual(layer.global_statistics()["dead_lettered_count"], 1)
            self.assertEqual(layer.channel_statistics("alo.dead")["dead_lettered_count"], 1)
        self.assertEqual(layer.requeue_dead_letters("alo.dead"), 1)
        self.assertEqual(layer.dead_letters(), [])
        _, message = self._alo_receive(["alo.dead"])
        delivery = self._delivery(message)
        self.assertEqual((message, delivery["count"]), ({"n": 9}, 1))
        layer.nack("alo.dead", delivery["id"], 0)
        for _ in range(2):
            _, message = self._alo_receive(["alo.dead"])
            layer.nack("alo.dead", self._delivery(message)["id"], 0)
        self.assertEqual(len(layer.dead_letters()), 1)
        self.assertEqual(layer.purge_dead_letters("alo.*"), 1)
        self.assertEqual(layer.dead_letters(), [])
