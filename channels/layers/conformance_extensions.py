"""The conformance checks of layer extensions (A-94..A-99, issue 9, issue 17).

Bases of `conformance.ConformanceTestCase`, which is what a layer's tests subclass.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from .conformance_base import LayerChecks, call_in_reactor

__all__ = ["AtLeastOnceChecks", "ExtensionChecks"]


class ExtensionChecks(LayerChecks):
    """``send_many_then_receive``, blocking receive, broadcast, refusals, statistics and
    the twisted/asyncio receives (A-94..A-99)."""

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
        st_a, st_full = "st_a", "st_full"
        if getattr(layer, "local_layer", None) is not None:
            # RedisLocalChannelLayer keeps normal channels in its machine-local layer,
            # which its statistics do not count (L-48): the same steps on single-reader
            # names, which it sends through Redis (L-47).
            st_a, st_full = layer.new_channel("st_a?"), layer.new_channel("st_full?")
        layer.send(st_a, {"n": 1})
        layer.send(st_a, {"n": 2})
        stats = layer.channel_statistics(st_a)
        self.assertEqual(stats["messages_count"], 2)
        self.assertEqual(stats["messages_pending"], 2)
        if self.capacity_limit is None:
            return
        for _ in range(self.capacity_limit):
            layer.send(st_full, {})
        with self.assertRaises(layer.ChannelFull):
            layer.send(st_full, {})
        layer.group_add("st_group", st_full)
        layer.send_group("st_group", {})
        self.assertEqual(layer.channel_statistics(st_full)["channel_full_count"], 2)
        self.assertEqual(layer.global_statistics()["channel_full_count"], 2)

    def test_receive_twisted(self) -> None:
        """A-98: receive_twisted fires with messages in send order."""
        self.skip_if_no_extension("twisted")
        layer: Any = self._layer  # twisted is an extension: not on the base class
        layer.send("rt_test", {"n": 1})
        layer.send("rt_test", {"n": 2})
        # The reactor runs only while each call waits (unless something else already
        # runs it in a thread), so a twisted.trial test later in the process can run it.
        first = call_in_reactor(layer.receive_twisted, ["rt_test"])
        second = call_in_reactor(layer.receive_twisted, ["rt_test"])
        self.assertEqual(first, ("rt_test", {"n": 1}))
        self.assertEqual(second, ("rt_test", {"n": 2}))

    def test_receive_async(self) -> None:
        """A-99"""
        self.skip_if_no_extension("asyncio")
        layer: Any = self._layer  # asyncio is an extension: not on the base class
        layer.send("ra_test", {"n": 1})
        result = asyncio.run(layer.receive_async(["ra_test"]))
        self.assertEqual(result, ("ra_test", {"n": 1}))


class AtLeastOnceChecks(LayerChecks):
    """At-least-once delivery (issue 17), on layers listing ``at_least_once``."""

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
