"""Collects the spec-required tests that live in `daphne/tests/` (D-1, §12).

pytest's testpaths is `tests/`, so the test classes are imported here to run with the
rest of the suite.
"""

from daphne.tests.test_endpoints import TestCLIInterface, TestEndpointDescriptions
from daphne.tests.test_http_request import TestHTTPRequestSpec, TestProxyHandling
from daphne.tests.test_http_response import TestHTTPResponseSpec
from daphne.tests.test_utils import (
    TestTrustedProxies,
    TestXForwardedForHttpParsing,
    TestXForwardedForWsParsing,
)
from daphne.tests.test_ws import TestHandshake

__all__ = [
    "TestCLIInterface",
    "TestEndpointDescriptions",
    "TestHTTPRequestSpec",
    "TestHTTPResponseSpec",
    "TestHandshake",
    "TestProxyHandling",
    "TestTrustedProxies",
    "TestXForwardedForHttpParsing",
    "TestXForwardedForWsParsing",
]
