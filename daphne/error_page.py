"""The small HTML page of daphne's own error answers (D-32)."""

from __future__ import annotations

__all__ = [
    "ERROR_TEMPLATE",
    "LAYER_UNREACHABLE",
    "PROCESSING_ERROR",
    "QUEUE_FULL",
    "RESTARTING",
    "TIMED_OUT",
    "error_response",
]

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


# Daphne's own answers, as `basic_error`'s (status, status_text, body).
# D-27: anything unexpected while processing a request (the layer's MessageTooLarge too).
PROCESSING_ERROR = (500, b"Internal Server Error", "HTTP processing error")
# D-31: the layer's http.request channel is full.
QUEUE_FULL = (503, b"Service Unavailable", "Request queue full.")
# Issue 14: the layer's backend is unreachable (with Retry-After).
LAYER_UNREACHABLE = (
    503,
    b"Service Unavailable",
    "The channel layer is unreachable; try again shortly.",
)
# D-17 step 4: the server stops before the application answered (issue 14).
RESTARTING = (503, b"Service Unavailable", "The server is restarting; try again shortly.")
# D-24: the application did not start a response in time.
TIMED_OUT = (503, b"Service Unavailable", "Worker server failed to respond within time limit.")


def error_response(
    template: str,
    status: int,
    status_text: bytes,
    body: str,
    close_connection: bool = False,
    retry_after: int | None = None,
) -> dict:
    """The Response message of one of daphne's own answers (D-32): `template` filled with
    title ``"<status> <status_text>"`` and `body`, whitespace-compacted, UTF-8."""
    title = "{} {}".format(status, status_text.decode("ascii"))
    page = template.format(title=title, body=body)
    headers = [(b"Content-Type", b"text/html; charset=utf-8")]
    if retry_after is not None:
        headers.append((b"Retry-After", str(retry_after).encode("ascii")))
    if close_connection:
        headers.append((b"Connection", b"close"))
    return {"status": status, "headers": headers, "content": " ".join(page.split()).encode()}
