"""1.4's ``daphne.utils`` (D-49, D-50, D-58): the proxy-header helpers, which live in
`daphne.proxy`. Kept so 1.4 imports still work."""

from .proxy import header_value, parse_x_forwarded_for

__all__ = ["header_value", "parse_x_forwarded_for"]
