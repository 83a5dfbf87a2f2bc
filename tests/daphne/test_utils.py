"""parse_x_forwarded_for with Twisted Headers and dicts (D-50, D-58, D-66)."""

import unittest

from twisted.web.http_headers import Headers

from daphne.utils import parse_x_forwarded_for


class TestXForwardedForHttpParsing(unittest.TestCase):
    def test_basic(self):
        headers = Headers(
            {
                b"X-Forwarded-For": [b"10.1.2.3"],
                b"X-Forwarded-Port": [b"1234"],
                b"X-Forwarded-Proto": [b"https"],
            }
        )
        self.assertEqual(parse_x_forwarded_for(headers), (["10.1.2.3", 1234], "https"))

    def test_address_only(self):
        headers = Headers({b"X-Forwarded-For": [b"10.1.2.3"]})
        self.assertEqual(parse_x_forwarded_for(headers), (["10.1.2.3", 0], None))

    def test_v6_address(self):
        headers = Headers({b"X-Forwarded-For": [b"1043::a321:0001, 10.0.5.6"]})
        self.assertEqual(parse_x_forwarded_for(headers), (["1043::a321:0001", 0], None))

    def test_multiple_proxies(self):
        headers = Headers({b"X-Forwarded-For": [b"10.1.2.3, 10.1.2.4"]})
        self.assertEqual(parse_x_forwarded_for(headers), (["10.1.2.3", 0], None))

    def test_original(self):
        headers = Headers({})
        self.assertEqual(
            parse_x_forwarded_for(headers, original_addr=["127.0.0.1", 80]),
            (["127.0.0.1", 80], None),
        )

    def test_no_original(self):
        self.assertEqual(parse_x_forwarded_for(Headers({})), (None, None))

    def test_port_ignored_without_address(self):
        headers = Headers({b"X-Forwarded-Port": [b"80"]})
        self.assertEqual(parse_x_forwarded_for(headers), (None, None))

    def test_non_integer_port_ignored(self):
        headers = Headers({b"X-Forwarded-For": [b"10.1.2.3"], b"X-Forwarded-Port": [b"abc"]})
        self.assertEqual(parse_x_forwarded_for(headers), (["10.1.2.3", 0], None))


class TestXForwardedForWsParsing(unittest.TestCase):
    def test_basic(self):
        headers = {"X-Forwarded-For": b"10.1.2.3", "X-Forwarded-Port": b"1234"}
        self.assertEqual(parse_x_forwarded_for(headers), (["10.1.2.3", 1234], None))

    def test_lowercase_str_lists(self):
        headers = {"x-forwarded-for": ["10.1.2.3"], "x-forwarded-port": ["80"]}
        self.assertEqual(parse_x_forwarded_for(headers), (["10.1.2.3", 80], None))


class TestTrustedProxies(unittest.TestCase):
    """D-66: the allow list decides whose headers count and which entry is the client."""

    headers = {b"X-Forwarded-For": b"1.2.3.4, 10.0.0.7, 10.0.0.8"}

    def test_untrusted_peer(self):
        self.assertEqual(
            parse_x_forwarded_for(
                self.headers, original_addr=["8.8.8.8", 5], forwarded_allow_ips=["10.0.0.0/8"]
            ),
            (["8.8.8.8", 5], None),
        )

    def test_rightmost_untrusted_entry(self):
        self.assertEqual(
            parse_x_forwarded_for(
                self.headers, original_addr=["10.0.0.9", 5], forwarded_allow_ips=["10.0.0.0/8"]
            ),
            (["1.2.3.4", 0], None),
        )

    def test_all_trusted_gives_leftmost(self):
        headers = {b"X-Forwarded-For": b"10.0.0.1, 10.0.0.2"}
        self.assertEqual(
            parse_x_forwarded_for(
                headers, original_addr=["10.0.0.9", 5], forwarded_allow_ips=["10.0.0.0/8"]
            ),
            (["10.0.0.1", 0], None),
        )

    def test_ipv4_mapped_peer(self):
        self.assertEqual(
            parse_x_forwarded_for(
                self.headers,
                original_addr=["::ffff:10.0.0.9", 5],
                forwarded_allow_ips=["10.0.0.0/8"],
            )[0],
            ["1.2.3.4", 0],
        )

    def test_unix_socket_peer_trusted(self):
        self.assertEqual(
            parse_x_forwarded_for(
                self.headers, original_addr=None, forwarded_allow_ips=["10.0.0.0/8"]
            )[0],
            ["1.2.3.4", 0],
        )
