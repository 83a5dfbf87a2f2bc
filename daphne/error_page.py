"""The small HTML page of daphne's own error answers (D-32)."""

from __future__ import annotations

__all__ = ["ERROR_TEMPLATE"]

# `str.format` fields: title ("<status> <status text>") and body.
ERROR_TEMPLATE = (
    "<html><head><title>{title}</title>"
    "<style>body {{ font-family: sans-serif; margin: 0; padding: 0; }}"
    " h1 {{ padding: 0.6em 0 0.2em 20px; color: #896868; margin: 0; }}"
    " p {{ padding: 0 0 0.3em 20px; margin: 0; }}"
    " footer {{ padding: 1em 0 0.3em 20px; color: #999; font-size: 80%;"
    " font-style: italic; }}</style></head>"
    "<body><h1>{title}</h1><p>{body}</p><footer>Daphne</footer></body></html>"
)
