"""Audit of the public names of daphne and the channel layers (issue 13, point 2).

daphne.md's module table (D-1) and sections, layers.md's layer table (L-1) and options, and
asgi.md's layer API (A-7, A-52 to A-54). Parameter lists are written without ``self``/``cls``
(tests/api_audit.py). The `channels` side is in tests/test_public_api.py.
"""

from __future__ import annotations

import importlib
import uuid
from importlib.metadata import entry_points

import pytest

from tests.api_audit import (
    audit_ids,
    check_bases,
    check_value,
    resolve,
    signature_mismatches,
    static_kind,
)

SERVER = (
    "(channel_layer, host=None, port=None, endpoints=None, unix_socket=None, "
    "file_descriptor=None, signal_handlers=True, action_logger=None, http_timeout=120, "
    "websocket_timeout=None, websocket_connect_timeout=20, ping_interval=20, ping_timeout=30, "
    "ws_protocols=None, root_path='', proxy_forwarded_address_header=None, "
    "proxy_forwarded_port_header=None, proxy_forwarded_proto_header=None, force_sync=False, "
    "verbosity=1, websocket_handshake_timeout=5, forwarded_allow_ips=None, "
    "websocket_max_message_size=1048576, http_max_body_size=0, graceful_timeout=10)"
)
HTTP_FACTORY = (
    "(channel_layer, action_logger=None, send_channel=None, timeout=120, "
    "websocket_timeout=86400, ping_interval=20, ping_timeout=30, ws_protocols=None, "
    "root_path='', websocket_connect_timeout=30, proxy_forwarded_address_header=None, "
    "proxy_forwarded_port_header=None, proxy_forwarded_proto_header=None, "
    "websocket_handshake_timeout=5, forwarded_allow_ips=None, "
    "websocket_max_message_size=1048576, http_max_body_size=0)"
)
REDIS = (
    "(expiry=60, hosts=None, prefix='asgi:', group_expiry=86400, capacity=100, "
    "channel_capacity=None, symmetric_encryption_keys=None, stats_prefix='asgi-meta:', "
    "connection_kwargs=None"
)
_base = "channels.layers.base.BaseChannelLayer."
_http = "daphne.http_protocol."
_ws = "daphne.ws_protocol.WebSocketProtocol."

SIGNATURES = [
    ("D-5", "daphne.cli.CommandLineInterface", "()"),
    ("D-5", "daphne.cli.CommandLineInterface.entrypoint", "()"),
    ("D-5", "daphne.cli.CommandLineInterface.run", "(args)"),
    (
        "D-11",
        "daphne.server.build_endpoint_description_strings",
        "(host=None, port=None, unix_socket=None, file_descriptor=None)",
    ),
    ("D-12", "daphne.server.Server", SERVER),
    ("D-13", "daphne.server.Server.run", "()"),
    ("D-13", "daphne.server.Server.on_listener_error", "(_failure)"),
    ("D-14", "daphne.server.Server.backend_reader_sync", "()"),
    ("D-15", "daphne.server.Server.backend_reader_twisted", "()"),
    ("D-16", "daphne.server.Server.timeout_checker", "()"),
    ("D-18", _http + "HTTPFactory", HTTP_FACTORY),
    ("D-20", _http + "HTTPFactory.buildProtocol", "(addr)"),
    ("D-21", _http + "HTTPFactory.make_send_channel", "()"),
    ("D-21", _http + "HTTPFactory.reply_channels", "()"),
    ("D-22", _http + "HTTPFactory.dispatch_reply", "(channel, message)"),
    ("D-23", _http + "HTTPFactory.log_action", "(protocol, action, details)"),
    ("D-24", _http + "HTTPFactory.check_timeouts", "()"),
    ("D-25", _http + "HTTPFactory.acceptableProtocols", "()"),
    ("D-26", _http + "WebRequest.duration", "()"),
    ("D-32", _http + "WebRequest.basic_error", "(status, status_text, body)"),
    ("D-33", _http + "WebRequest.unquote", "(value, plus_as_space=False)"),
    ("D-34", _http + "WebRequest.serverResponse", "(message)"),
    ("D-38", _ws + "set_main_factory", "(main_factory)"),
    ("D-38", _ws + "onConnect", "(request)"),
    ("D-39", _ws + "serverAccept", "()"),
    ("D-39", _ws + "serverReject", "()"),
    ("D-39", _ws + "serverSend", "(content, binary=False)"),
    ("D-39", _ws + "serverClose", "(code=True)"),
    ("D-40", _ws + "onOpen", "()"),
    ("D-40", _ws + "onMessage", "(payload, isBinary)"),
    ("D-41", _ws + "onClose", "(wasClean, code, reason)"),
    ("D-43", _ws + "check_ping", "()"),
    ("D-43", _ws + "duration", "()"),
    ("D-45", _ws + "unquote", "(value)"),
    ("D-45", _ws + "cleanup", "()"),
    ("D-46", "daphne.ws_protocol.WebSocketFactory", "(main_factory, *args, **kwargs)"),
    ("D-46", "daphne.ws_protocol.WebSocketFactory.log_action", "(*args, **kwargs)"),
    ("D-47", "daphne.access.AccessLogGenerator", "(stream)"),
    ("D-47", "daphne.access.AccessLogGenerator.__call__", "(protocol, action, details)"),
    (
        "D-47",
        "daphne.access.AccessLogGenerator.write_entry",
        "(host, date, request, status=None, length=None, ident=None, user=None)",
    ),
    ("D-49", "daphne.utils.header_value", "(headers, _name)"),
    (
        "D-50",
        "daphne.utils.parse_x_forwarded_for",
        "(headers, address_header_name='X-Forwarded-For', port_header_name='X-Forwarded-Port', "
        "proto_header_name='X-Forwarded-Proto', original_addr=None, original_scheme=None, "
        "forwarded_allow_ips=None)",
    ),
    (
        "A-52",
        "channels.layers.base.BaseChannelLayer",
        "(expiry=60, group_expiry=86400, capacity=100, channel_capacity=None)",
    ),
    ("A-7", _base + "send", "(channel, message)"),
    ("A-7", _base + "receive", "(channels, block=False)"),
    ("A-7", _base + "receive_many", "(channels, block=False)"),
    ("A-7", _base + "new_channel", "(pattern)"),
    ("A-41", _base + "group_add", "(group, channel)"),
    ("A-42", _base + "group_discard", "(group, channel)"),
    ("A-43", _base + "group_channels", "(group)"),
    ("A-44", _base + "send_group", "(group, message)"),
    ("A-48", _base + "flush", "()"),
    ("A-53", _base + "compile_capacities", "(mapping)"),
    ("A-53", _base + "get_capacity", "(channel)"),
    ("A-53", _base + "match_type_and_length", "(name)"),
    ("A-53", _base + "valid_channel_name", "(name, receive=False)"),
    ("A-53", _base + "valid_group_name", "(name)"),
    ("A-53", _base + "valid_channel_names", "(names, receive=False)"),
    ("A-53", _base + "non_local_name", "(name)"),
    ("A-54", "channels.layers.conformance.ConformanceTestCase.receive", "(channels)"),
    (
        "L-7",
        "channels.layers.inmemory.ChannelLayer",
        "(expiry=60, group_expiry=86400, capacity=10, channel_capacity=None)",
    ),
    ("L-16", "channels.layers.inmemory.ChannelLayer.global_statistics", "()"),
    ("L-16", "channels.layers.inmemory.ChannelLayer.channel_statistics", "(channel)"),
    ("L-18", "asgi_redis.RedisChannelLayer", REDIS + ")"),
    ("L-22", "asgi_redis.RedisChannelLayer.connection", "(index)"),
    ("L-24", "asgi_redis.RedisChannelLayer.consistent_hash", "(value)"),
    ("L-39", "asgi_redis.RedisChannelLayer.global_statistics", "()"),
    ("L-40", "asgi_redis.RedisChannelLayer.channel_statistics", "(channel)"),
    ("L-43", "asgi_redis.RedisChannelLayer.receive_twisted", "(channels)"),
    ("L-61", "asgi_redis.RedisChannelLayer.receive_async", "(channels)"),
    (
        "L-45",
        "asgi_redis.RedisLocalChannelLayer",
        "(expiry=60, prefix='asgi:', group_expiry=86400, capacity=100, channel_capacity=None, "
        "**kwargs)",
    ),
    (
        "L-50",
        "asgi_redis.RedisSentinelChannelLayer",
        REDIS + ", services=None, sentinel_refresh_interval=0)",
    ),
    (
        "L-55",
        "asgi_ipc.IPCChannelLayer",
        "(prefix='asgi', expiry=60, group_expiry=86400, capacity=100, channel_capacity=None, "
        "message_memory=104857600, group_memory=20971520)",
    ),
]

CLASSMETHODS = [
    ("D-5", "daphne.cli.CommandLineInterface.entrypoint"),
    ("D-33", _http + "WebRequest.unquote"),
    ("D-45", _ws + "unquote"),
]

VALUES = [
    ("D-1", "daphne.__version__", "1.4.2"),
    ("D-1", "daphne.cli.DEFAULT_HOST", "127.0.0.1"),
    ("D-1", "daphne.cli.DEFAULT_PORT", 8000),
    ("D-1", "daphne.tests.asgi.channel_layer", {}),
    ("D-5", "daphne.cli.CommandLineInterface.description", "Django HTTP/WebSocket server"),
    ("D-38", _ws + "muted", False),
    ("D-64", _http + "HTTPFactory.max_header_size", 16384),
    ("D-64", _http + "HTTPFactory.max_header_count", 100),
    ("A-52", "channels.layers.base.BaseChannelLayer.extensions", []),
    ("A-92", "channels.layers.base.BaseChannelLayer.max_message_size", 1114112),
    ("A-54", "channels.layers.conformance.ConformanceTestCase.channel_layer", None),
    ("A-54", "channels.layers.conformance.ConformanceTestCase.expiry_delay", None),
    ("A-54", "channels.layers.conformance.ConformanceTestCase.capacity_limit", None),
    ("A-54", "channels.layers.conformance.ConformanceTestCase.receive_tries", 1),
    ("A-94", "channels.layers.conformance.ConformanceTestCase.blocking_receive", True),
    ("L-1", "channels.layers.inmemory.ChannelLayer.extensions", ["groups", "flush", "statistics"]),
    (
        "L-1",
        "asgi_redis.RedisChannelLayer.extensions",
        ["groups", "flush", "statistics", "twisted", "asyncio"],
    ),
    (
        "L-1",
        "asgi_redis.RedisLocalChannelLayer.extensions",
        ["groups", "flush", "statistics", "twisted", "asyncio"],
    ),
    ("L-1", "asgi_ipc.IPCChannelLayer.extensions", ["groups", "flush"]),
    ("L-21", "asgi_redis.RedisChannelLayer.blpop_timeout", 5),
    ("L-21", "asgi_redis.RedisChannelLayer.channel_statistics_expiry", 3600),
    ("L-21", "asgi_redis.RedisChannelLayer.global_statistics_expiry", 86400),
    ("L-21", "asgi_redis.RedisChannelLayer.global_stats_key", "#global#"),
]

SUBCLASSES = [
    ("D-18", _http + "HTTPFactory", ["twisted.web.http.HTTPFactory"]),
    ("D-26", _http + "WebRequest", ["twisted.web.http.Request"]),
    (
        "D-38",
        "daphne.ws_protocol.WebSocketProtocol",
        ["autobahn.twisted.websocket.WebSocketServerProtocol"],
    ),
    (
        "D-46",
        "daphne.ws_protocol.WebSocketFactory",
        ["autobahn.twisted.websocket.WebSocketServerFactory"],
    ),
    ("A-36", "channels.layers.base.BaseChannelLayer.ChannelFull", ["builtins.Exception"]),
    ("A-36", "channels.layers.base.BaseChannelLayer.MessageTooLarge", ["builtins.Exception"]),
    ("A-54", "channels.layers.conformance.ConformanceTestCase", ["unittest.TestCase"]),
    ("L-28", "asgi_redis.core.UnsupportedRedis", ["builtins.Exception"]),
] + [
    ("L-2", path, ["channels.layers.base.BaseChannelLayer"])
    for path in (
        "channels.layers.inmemory.ChannelLayer",
        "asgi_redis.RedisChannelLayer",
        "asgi_redis.RedisLocalChannelLayer",
        "asgi_redis.RedisSentinelChannelLayer",
        "asgi_ipc.IPCChannelLayer",
    )
]

LAYER_CLASSES = [
    "channels.layers.inmemory.ChannelLayer",
    "asgi_redis.RedisChannelLayer",
    "asgi_redis.RedisLocalChannelLayer",
    "asgi_redis.RedisSentinelChannelLayer",
    "asgi_ipc.IPCChannelLayer",
]


@pytest.mark.parametrize(("spec_id", "path", "spec"), SIGNATURES, ids=audit_ids(SIGNATURES))
def test_signature(spec_id, path, spec):
    """Issue 13: each public callable takes the spec's parameters and defaults."""
    assert signature_mismatches(path, spec) == []


@pytest.mark.parametrize(("spec_id", "path"), CLASSMETHODS, ids=audit_ids(CLASSMETHODS))
def test_classmethod(spec_id, path):
    """Issue 13: names the spec calls classmethods can be called on the class."""
    assert static_kind(path) == "classmethod"


@pytest.mark.parametrize(("spec_id", "path", "value"), VALUES, ids=audit_ids(VALUES))
def test_value(spec_id, path, value):
    """Issue 13: constants and class attributes 1.x code reads or sets."""
    check_value(path, value)


@pytest.mark.parametrize(("spec_id", "path", "bases"), SUBCLASSES, ids=audit_ids(SUBCLASSES))
def test_base_classes(spec_id, path, bases):
    """Issue 13: exception types and class hierarchies 1.x code catches or subclasses."""
    check_bases(path, bases)


@pytest.mark.parametrize(
    "module",
    ["daphne.tests.factories", "daphne.tests.testcases", "daphne.tests.http_strategies"],
)
def test_daphne_test_helpers_import(module):
    """D-1: the test helper modules 1.4's tests import exist."""
    importlib.import_module(module)


def test_daphne_console_script():
    """D-2: the `daphne` console script points at CommandLineInterface.entrypoint."""
    (script,) = [point for point in entry_points(group="console_scripts") if point.name == "daphne"]
    assert script.value == "daphne.cli:CommandLineInterface.entrypoint"


# D-6: option strings -> (dest, default) of daphne's argument parser.
CLI_OPTIONS = {
    "--port": ("port", None),
    "--bind": ("host", None),
    "--unix-socket": ("unix_socket", None),
    "--fd": ("file_descriptor", None),
    "--endpoint": ("socket_strings", []),
    "--verbosity": ("verbosity", 1),
    "--http-timeout": ("http_timeout", 120),
    "--access-log": ("access_log", None),
    "--ping-interval": ("ping_interval", 20),
    "--ping-timeout": ("ping_timeout", 30),
    "--websocket_timeout": ("websocket_timeout", None),
    "--websocket_connect_timeout": ("websocket_connect_timeout", 5),
    "--ws-protocol": ("ws_protocols", None),
    "--root-path": ("root_path", ""),
    "--proxy-headers": ("proxy_headers", False),
    "--force-sync": ("force_sync", False),
    "--forwarded-allow-ips": ("forwarded_allow_ips", None),
    "--websocket-max-message-size": ("websocket_max_message_size", 1048576),
    "--http-max-body-size": ("http_max_body_size", 0),
    "--graceful-timeout": ("graceful_timeout", 10),
}


def test_cli_options():
    """D-5, D-6: the CLI's parser, its options' dests and defaults, and `server = None`."""
    from daphne.cli import CommandLineInterface

    cli = CommandLineInterface()
    assert cli.server is None
    actions = {option: action for action in cli.parser._actions for option in action.option_strings}
    for option, (dest, default) in CLI_OPTIONS.items():
        assert (actions[option].dest, actions[option].default) == (dest, default), option
    for short, long in (("-p", "--port"), ("-b", "--bind"), ("-u", "--unix-socket")):
        assert actions[short] is actions[long]
    for short, long in (("-e", "--endpoint"), ("-v", "--verbosity"), ("-t", "--http-timeout")):
        assert actions[short] is actions[long]
    options = cli.parser.parse_args(["daphne.tests.asgi:channel_layer"])
    assert options.channel_layer == "daphne.tests.asgi:channel_layer"


def test_server_keeps_its_arguments():
    """D-12: every argument is a same-named attribute; listeners starts empty; no endpoint
    at all is refused with a UserWarning; the layer may be a plain dict."""
    from daphne.server import Server

    server = Server({}, endpoints=["tcp:port=0"], http_timeout=7, root_path="/app")
    assert server.channel_layer == {} and server.endpoints == ["tcp:port=0"]
    assert (server.http_timeout, server.root_path, server.listeners) == (7, "/app", [])
    assert (server.signal_handlers, server.verbosity, server.graceful_timeout) == (True, 1, 10)
    with pytest.raises(UserWarning, match="No endpoints"):
        Server({})


def test_http_factory_attributes_are_assignable():
    """D-18, D-58: tests assign the proxy header names (and the layer) on a built factory."""
    from channels.layers.inmemory import ChannelLayer
    from daphne.http_protocol import HTTPFactory

    factory = HTTPFactory(ChannelLayer(), send_channel="test!")
    replacement = ChannelLayer()
    factory.channel_layer = replacement
    factory.proxy_forwarded_address_header = "X-Forwarded-For"
    factory.proxy_forwarded_port_header = "X-Forwarded-Port"
    factory.proxy_forwarded_proto_header = "X-Forwarded-Proto"
    assert factory.channel_layer is replacement
    assert factory.proxy_forwarded_proto_header == "X-Forwarded-Proto"
    assert factory.ws_factory.reply_protocols is factory.reply_protocols
    with pytest.raises(AssertionError):
        HTTPFactory(ChannelLayer())


@pytest.mark.parametrize("path", LAYER_CLASSES)
def test_layer_exceptions_are_shared(path):
    """A-36: every project layer's ChannelFull/MessageTooLarge are the base class's."""
    from channels.layers.base import BaseChannelLayer

    layer_class = resolve(path)
    assert layer_class.ChannelFull is BaseChannelLayer.ChannelFull
    assert layer_class.MessageTooLarge is BaseChannelLayer.MessageTooLarge


def test_layer_versions_and_names():
    """L-5, L-54: version strings and str(layer); constructing a Redis layer never connects."""
    import asgi_ipc
    import asgi_redis
    from tests.asgi_ipc.helpers import remove_store

    assert isinstance(asgi_redis.__version__, str) and isinstance(asgi_ipc.__version__, str)
    redis_layer = asgi_redis.RedisChannelLayer(hosts=["redis://localhost:6379/0"])
    assert str(redis_layer) == "RedisChannelLayer(hosts=['redis://localhost:6379/0'])"
    sentinel = asgi_redis.RedisSentinelChannelLayer(services=["mymaster"])
    assert str(sentinel) == "RedisSentinelChannelLayer(services==['mymaster'])"
    prefix = f"audit{uuid.uuid4().hex[:8]}"
    try:
        assert str(asgi_ipc.IPCChannelLayer(prefix=prefix)) == f"IPCChannelLayer(prefix={prefix})"
    finally:
        remove_store(prefix)


def test_layer_api_exception_types():
    """A-7, A-13, A-33, A-34, A-53: the exception types of the layer API (in-memory layer)."""
    from channels.layers.inmemory import ChannelLayer

    layer = ChannelLayer()
    refusals = [
        (AssertionError, lambda: layer.send("a", ["not", "a", "dict"])),
        (AssertionError, lambda: layer.send("a", {"__asgi_channel__": "x"})),
        (TypeError, lambda: layer.send("a b", {})),
        (TypeError, lambda: layer.send("a", {"value": {1, 2}})),
        (TypeError, lambda: layer.receive("a")),
        (TypeError, lambda: layer.receive(["a!x"])),
        (AssertionError, lambda: layer.new_channel("a!")),
        (AssertionError, lambda: layer.new_channel("a")),
        (AssertionError, lambda: layer.valid_channel_names([])),
        (TypeError, lambda: layer.group_add("g?x", "a")),
    ]
    for error, call in refusals:
        with pytest.raises(error):
            call()
    assert layer.receive([]) == (None, None)
    with pytest.warns(DeprecationWarning):
        assert layer.receive_many(["a"]) == (None, None)
    assert static_kind("channels.layers.inmemory.ChannelLayer.send") == "method"


def test_inmemory_module_instance():
    """A-2, L-8: channels.layers.inmemory has a ready-made `channel_layer` instance."""
    from channels.layers import inmemory

    assert isinstance(inmemory.channel_layer, inmemory.ChannelLayer)


def test_return_values():
    """Issue 13: return values the spec states (A-7, A-41, A-53, D-11, C-7, C-10, C-39)."""
    from unittest import mock

    from channels.asgi import ChannelLayerManager, ChannelLayerWrapper
    from channels.handler import AsgiHandler
    from channels.layers.inmemory import ChannelLayer
    from channels.message import Message
    from channels.routing import Router, null_consumer, route
    from channels.utils import name_that_thing
    from daphne.server import build_endpoint_description_strings

    layer = ChannelLayer()
    assert layer.send("a", {"n": 1}) is None
    assert layer.receive(["a"]) == ("a", {"n": 1})
    assert layer.receive(["a"]) == (None, None)
    assert layer.group_add("g", "a") is None and layer.group_discard("g", "a") is None
    assert layer.non_local_name("p!l") == "p!" and layer.non_local_name("p") == "p"
    assert layer.valid_channel_name("a!x") is True and layer.valid_group_name("g") is True
    assert isinstance(layer.new_channel("n?"), str)
    assert build_endpoint_description_strings() == []
    assert name_that_thing(mock.Mock()) == "<mock>"
    assert name_that_thing(name_that_thing) == "channels.utils.name_that_thing"
    assert list(AsgiHandler.chunk_bytes(b"")) == [(b"", True)]
    assert null_consumer() is None
    manager = ChannelLayerManager()
    wrapper = ChannelLayerWrapper(layer, "audit", [])
    router = Router([route("a", null_consumer)])
    assert router.match(Message({"x": 1}, "a", wrapper)) == (null_consumer, {})
    assert router.match(Message({"x": 1}, "b", wrapper)) is None
    assert manager.set("audit", wrapper) is None
    assert manager.set("audit", wrapper) is wrapper


def test_no_module_imports_retired_packages():
    """C-1, A-1, D-4, L-4: no project module imports six, django.utils.six, distutils or asgiref
    (asgiref 3's name belongs to Django; the ASGI-1 code lives in channels.layers)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    banned = ("six", "django.utils.six", "distutils", "asgiref")
    offenders = []
    for package in ("channels", "daphne", "asgi_redis", "asgi_ipc"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    if any(name == b or name.startswith(b + ".") for b in banned):
                        offenders.append(f"{path.relative_to(root)}: {name}")
    assert offenders == []
