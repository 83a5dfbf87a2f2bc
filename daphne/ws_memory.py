"""What an open WebSocket keeps: the opening handshake's state is released once the
socket is open (issue 20 item 2, W5: daphne memory per idle socket).

autobahn's server protocol keeps everything its opening handshake parsed (the raw
request, its headers, the 101 response it wrote, the offered protocols and extensions)
in instance attributes for the socket's whole life, and daphne kept the parsed request,
its header list and the ``websocket.connect`` message. None of it is read again once the
socket is open: autobahn reads these attributes only in ``processHandshake`` and
``succeedHandshake``, daphne only until the application accepted (a connect retry resends
``request_info``; the access log needs the path, which stays).

Most of what remains is the same on every socket: autobahn copies each of its factory's
~25 options onto every protocol, and sets ~35 flags and counters (``wasClean``,
``closedByMe``, ``autoPingPendingSeq``, ...) that stay at their first values while a
socket is open. Those become class attributes of daphne's protocol class (the values the
first socket opened with) and leave the instance, which reads them through its class
until it assigns its own (a socket of another factory with other options keeps its own).

An autobahn protocol has about 100 attributes, too many for CPython's shared-key instance
dicts, so each socket has a dict of its own that only grows: removing keys leaves its
table as large as before. ``release_handshake`` therefore rebuilds the dict, sized for
what remains: about 3.3 KB per socket less (of ~15 KB in all, W5).
"""

from __future__ import annotations

from typing import Any

__all__ = ["HANDSHAKE_ONLY", "SHARED", "OpenedRequest", "release_handshake"]

# autobahn (WebSocketServerProtocol.processHandshake / succeedHandshake) and daphne
# (WebSocketProtocol.onConnect) attributes nothing reads after the handshake.
HANDSHAKE_ONLY = (
    "http_headers",
    "http_request_data",
    "http_request_uri",
    "http_request_path",
    "http_request_params",
    "http_request_host",
    "http_status_line",
    "http_response_data",
    "websocket_protocols",
    "websocket_extensions",
    "websocket_origin",
    "_wskey",
    "clean_headers",
    "request_info",
)


# Attributes every open socket of a factory holds with the same immutable value: autobahn's
# protocol options (copied from the factory by `_connectionMade`) and its per-connection
# flags as they are while a socket is open and idle.
SHARED = (
    # options
    "logOctets",
    "logFrames",
    "trackTimings",
    "utf8validateIncoming",
    "applyMask",
    "maxFramePayloadSize",
    "maxMessagePayloadSize",
    "autoFragmentSize",
    "failByDrop",
    "echoCloseCodeReason",
    "openHandshakeTimeout",
    "closeHandshakeTimeout",
    "tcpNoDelay",
    "autoPingInterval",
    "autoPingTimeout",
    "autoPingSize",
    "autoPingRestartOnAnyTraffic",
    "webStatus",
    "requireMaskedClientFrames",
    "maskServerFrames",
    "serveFlashSocketPolicy",
    "flashSocketPolicy",
    "allowNullOrigin",
    "maxConnections",
    "trustXForwardedFor",
    # per-connection state, as it is on an open socket
    "_perMessageCompress",
    "trackedTimings",
    "state",
    "send_state",
    "data",
    "triggered",
    "wasMaxFramePayloadSizeExceeded",
    "wasMaxMessagePayloadSizeExceeded",
    "closedByMe",
    "failedByMe",
    "droppedByMe",
    "wasClean",
    "wasNotCleanReason",
    "wasServerConnectionDropTimeout",
    "wasOpenHandshakeTimeout",
    "wasCloseHandshakeTimeout",
    "wasServingFlashSocketPolicyFile",
    "localCloseCode",
    "localCloseReason",
    "remoteCloseCode",
    "remoteCloseReason",
    "openHandshakeTimeoutCall",
    "closeHandshakeTimeoutCall",
    "autoPingTimeoutCall",
    "autoPingPending",
    "autoPingPendingCall",
    "autoPingPendingSeq",
    "autoPingPendingSent",
    "websocket_version",
    "protocol_to_accept",
    "websocket_protocol_in_use",
    "inside_message",
    "current_frame",
)
# Only values that cannot be changed in place may live on the class.
_IMMUTABLE = (bool, int, float, str, bytes, type(None))


class OpenedRequest:
    """What daphne still reads of autobahn's ``ConnectionRequest`` once the socket is
    open: the path, for the access log."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


def release_handshake(protocol: Any) -> None:
    """Drop what only the opening handshake needed, move what every open socket holds
    alike to the class, and compact the instance dict. Call it once the socket is open."""
    attributes = protocol.__dict__
    for name in HANDSHAKE_ONLY:
        attributes.pop(name, None)
    request = attributes.get("request")
    if request is not None and not isinstance(request, OpenedRequest):
        attributes["request"] = OpenedRequest(request.path)
    cls = type(protocol)
    defaults = cls.__dict__
    missing = object()
    for name in SHARED:
        value = attributes.get(name, missing)
        if value is missing or type(value) not in _IMMUTABLE:
            continue
        default = defaults.get(name, missing)
        if default is missing:
            setattr(cls, name, value)  # the first open socket sets the class default
        elif type(default) is not type(value) or default != value:
            continue  # this socket's own value (another factory's options)
        del attributes[name]
    # An empty deque holds a 64-slot block (~600 bytes): an idle socket reads the class's
    # empty tuple instead; `WebSocketProtocol.sendData` puts a deque back before queueing.
    if not attributes.get("send_queue", True):
        if "send_queue" not in defaults:
            cls.send_queue = ()
        del attributes["send_queue"]
    protocol.__dict__ = dict(attributes)
