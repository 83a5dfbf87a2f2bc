"""Hypothesis strategies for HTTP request parts (Daphne 1.4's, for current hypothesis)."""

from __future__ import annotations

import string
from urllib import parse

from hypothesis import strategies
from hypothesis.strategies import SearchStrategy

HTTP_METHODS = ["OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "CONNECT"]

# Unicode characters of the "Letter" category
letters = strategies.characters(
    whitelist_categories=("Lu", "Ll", "Lt", "Lm", "Lo", "Nl"),
)

# The request head daphne accepts (HTTPFactory.max_header_size, D-64), less room for
# the request line, which the strategies below keep far smaller.
HEADERS_BUDGET = 16384 - 4096


def http_method() -> SearchStrategy[str]:
    return strategies.sampled_from(HTTP_METHODS)


def _http_path_portion() -> SearchStrategy[str]:
    alphabet = string.ascii_letters + string.digits + "-._~"
    return strategies.text(min_size=1, max_size=128, alphabet=alphabet)


def http_path() -> SearchStrategy[str]:
    """Returns a URL path (not encoded)."""
    return strategies.lists(_http_path_portion(), min_size=0, max_size=10).map(
        lambda s: "/" + "/".join(s)
    )


def http_body() -> SearchStrategy[str]:
    """Returns random printable ASCII characters (a str, as in 1.4: its tests call
    ``body.encode("ascii")`` and the factories take str bodies)."""
    return strategies.text(alphabet=string.printable, min_size=0, max_size=1500)


def valid_bidi(value: str) -> bool:
    """Rejects strings with nonsensical Unicode text direction flags."""
    try:
        value.encode("idna")
    except UnicodeError:
        return False
    else:
        return True


def _domain_label() -> SearchStrategy[str]:
    return strategies.text(alphabet=letters, min_size=1, max_size=63).filter(valid_bidi)


def international_domain_name() -> SearchStrategy[bytes]:
    """Returns a byte string of a domain name, IDNA-encoded."""
    return strategies.lists(_domain_label(), min_size=2).map(lambda s: (".".join(s)).encode("idna"))


def _query_param() -> SearchStrategy[bytes]:
    return strategies.text(alphabet=letters, min_size=1, max_size=255).map(
        lambda s: s.encode("utf8")
    )


def query_params() -> SearchStrategy[list[tuple[bytes, bytes]]]:
    """A list of two-tuples of byte strings whose urlencoding stays under 1500 characters."""
    return strategies.lists(strategies.tuples(_query_param(), _query_param()), min_size=0).filter(
        lambda x: len(parse.urlencode(x)) < 1500
    )


def header_name() -> SearchStrategy[str]:
    """Something that looks like an HTTP header field name."""
    return strategies.text(
        alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=30
    )


def header_value() -> SearchStrategy[str]:
    """Something that looks like an HTTP header value."""
    return strategies.text(
        alphabet=string.ascii_letters + string.digits + string.punctuation + " /t",
        min_size=1,
        max_size=8190,
    ).filter(lambda s: len(s.encode("utf8")) < 8190)


def headers() -> SearchStrategy[list[tuple[str, str]]]:
    """A list of (name, value) header tuples, at most 100 and within daphne's head limit."""
    return strategies.lists(
        strategies.tuples(header_name(), header_value()), min_size=0, max_size=100
    ).filter(lambda pairs: sum(len(n) + len(v) + 4 for n, v in pairs) < HEADERS_BUDGET)
