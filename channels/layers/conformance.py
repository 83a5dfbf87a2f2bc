"""The conformance suite every channel layer runs (A-54..A-72, A-94..A-99).

Subclass `ConformanceTestCase`, set `channel_layer` and `expiry_delay` (and,
where they apply, `capacity_limit` and `receive_tries`), and run it with
unittest or pytest. Backends construct the layer with
``expiry=1, group_expiry=2, capacity=5`` (L-58).
"""

from __future__ import annotations

import time

from .base import BaseChannelLayer
from .conformance_base import LayerChecks, call_in_reactor, run_reactor_in_thread
from .conformance_extensions import AtLeastOnceChecks, ExtensionChecks

__all__ = ["ConformanceTestCase", "LayerChecks", "call_in_reactor", "run_reactor_in_thread"]


class CoreChecks(LayerChecks):
    """A-55 .. A-72: what every layer does."""

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


class ConformanceTestCase(CoreChecks, ExtensionChecks, AtLeastOnceChecks):
    """Behaviour every ASGI-1 layer must show (A-54); extensions a layer lists are
    checked too, the others skipped."""
