"""`ServerConfig`: one home for daphne's options, their defaults and validation, and the
1.4 ways in (`Server` keywords D-12, `HTTPFactory` keywords D-18, the CLI D-6) that
build or share it (issue 16 item 3)."""

from __future__ import annotations

import dataclasses
import inspect
import io
import ipaddress
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from channels.layers.inmemory import ChannelLayer
from daphne import http_factory, http_protocol
from daphne.cli import COMPOSED_OPTIONS, CommandLineInterface
from daphne.config import (
    CLI,
    FACTORY,
    SERVER,
    ConfigError,
    ConfigOption,
    ServerConfig,
    cli_endpoints,
)
from daphne.http_factory import HTTPFactory
from daphne.server import Server
from tests.daphne.clocked import connect

ROOT = Path(__file__).resolve().parents[2]
FIELDS = [spec.name for spec in dataclasses.fields(ServerConfig)]

# D-12's table (1.4's Server defaults), which ServerConfig's defaults are.
D12_DEFAULTS = {
    "endpoints": [],
    "signal_handlers": True,
    "action_logger": None,
    "http_timeout": 120,
    "websocket_timeout": None,
    "websocket_connect_timeout": 20,
    "ping_interval": 20,
    "ping_timeout": 30,
    "ws_protocols": None,
    "root_path": "",
    "proxy_forwarded_address_header": None,
    "proxy_forwarded_port_header": None,
    "proxy_forwarded_proto_header": None,
    "force_sync": False,
    "verbosity": 1,
    "websocket_handshake_timeout": 5,
    "forwarded_allow_ips": None,
    "websocket_max_message_size": 1048576,
    "http_max_body_size": 0,
    "graceful_timeout": 10,
}
# D-18's HTTPFactory defaults where they differ from D-12's.
D18_DIFFERENCES = {"websocket_timeout": 86400, "websocket_connect_timeout": 30}
# D-64 and issue 15: the limits 1.4 had no option for; `Server` checks Host.
LATER_DEFAULTS = {
    "max_header_size": 16384,
    "max_header_count": 100,
    "head_timeout": 60,
    "body_idle_timeout": 60,
    "outbound_full_timeout": 5,
    "max_outbound_buffer": 1048576,
    "http_body_timeout": 120,
    "max_connections": 0,
    "require_host": True,
    "reuse_port": False,
    "http_queue_timeout": 5,
    "websocket_drain_time": 5,
    "metrics_port": None,
    "metrics_host": "127.0.0.1",
    # Issue 21.
    "ws_compression": True,
    "h2c": False,
}


# What the process does, not its connections: `Server` has them, the factory not.
PROCESS_FIELDS = {
    "endpoints",
    "signal_handlers",
    "verbosity",
    "force_sync",
    "graceful_timeout",
    "reuse_port",
    "websocket_drain_time",
    "metrics_port",
    "metrics_host",
}


def reach(name: str) -> tuple[str, ...]:
    return ServerConfig.__dataclass_fields__[name].metadata["reach"]


# -- defaults -------------------------------------------------------------------------


def test_defaults_are_1_4s():
    """D-12: every default of a bare ServerConfig is 1.4's Server default."""
    assert ServerConfig.defaults() == {**D12_DEFAULTS, **LATER_DEFAULTS}
    assert dataclasses.asdict(ServerConfig()) == ServerConfig.defaults()


def test_server_and_factory_signature_defaults_are_the_configs():
    """D-12, D-18: the keyword defaults are the config's (D-18's two differences aside)."""
    defaults = ServerConfig.defaults()
    for name, parameter in inspect.signature(Server).parameters.items():
        if name in defaults and name != "endpoints":
            assert parameter.default == defaults[name], name
    for name, parameter in inspect.signature(HTTPFactory).parameters.items():
        field = "http_timeout" if name == "timeout" else name
        if field in defaults:
            expected = D18_DIFFERENCES.get(field, defaults[field])
            assert parameter.default == expected, name


def test_factory_built_alone_has_d18_defaults_and_no_host_check():
    """D-18, D-53: the keyword path keeps 1.4's factory defaults and leniency."""
    factory = HTTPFactory(ChannelLayer(), send_channel="test!")
    assert (factory.timeout, factory.websocket_timeout, factory.websocket_connect_timeout) == (
        120,
        86400,
        30,
    )
    assert factory.require_host is False
    assert factory.config.require_host is False


# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"http_timeout": -5}, "http_timeout is negative (-5); use 0 or more"),
        ({"max_connections": -1}, "max_connections is negative (-1); use 0 or more"),
        ({"ping_interval": "20"}, "ping_interval must be a number, not '20'"),
        ({"graceful_timeout": True}, "graceful_timeout must be a number, not True"),
        ({"verbosity": 1.5}, "verbosity must be an integer, not 1.5"),
        ({"root_path": None}, "root_path must be a str, not None"),
        (
            {"ws_protocols": "graphql-ws"},
            "ws_protocols must be a list of strings such as ['graphql-ws'], not 'graphql-ws'",
        ),
        ({"endpoints": "tcp:8000"}, "endpoints must be a list of strings such as ['tcp:8000']"),
        ({"action_logger": "stdout"}, "action_logger must be a callable"),
        (
            {"forwarded_allow_ips": "10.0.0.1"},
            "forwarded_allow_ips requires proxy_forwarded_address_header",
        ),
        ({"forwarded_allow_ips": "*"}, "forwarded_allow_ips requires"),
        (
            {"forwarded_allow_ips": ["nonsense"], "proxy_forwarded_address_header": "X-F-F"},
            "forwarded_allow_ips entry 'nonsense' is not an IP address or CIDR network",
        ),
        ({"ping_timeout": {}}, "ping_timeout must be a number, not {}"),
    ],
)
def test_invalid_values_say_what_to_change(options, message):
    with pytest.raises(ConfigError) as caught:
        ServerConfig(**options)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == next(iter(options))


def test_valid_edge_values():
    """0 is "no limit" or "at once"; a negative websocket_timeout is unlimited (D-12)."""
    config = ServerConfig(http_max_body_size=0, graceful_timeout=0, websocket_timeout=-1)
    assert config.websocket_timeout == -1
    assert ServerConfig(ping_interval=0.5, ws_protocols=("a", "b")).ping_interval == 0.5


def test_allowed_ips_from_the_cli_form_are_parsed():
    """D-66: a comma-separated string becomes networks, ``*`` None; a list is kept as given."""
    proxy = {"proxy_forwarded_address_header": "X-Forwarded-For"}
    config = ServerConfig(forwarded_allow_ips="10.0.0.1, 10.1.0.0/16", **proxy)
    assert config.forwarded_allow_ips == [
        ipaddress.ip_network("10.0.0.1/32"),
        ipaddress.ip_network("10.1.0.0/16"),
    ]
    assert ServerConfig(forwarded_allow_ips="*", **proxy).forwarded_allow_ips is None
    assert ServerConfig(forwarded_allow_ips=["10.0.0.1"], **proxy).forwarded_allow_ips == [
        "10.0.0.1"
    ]
    # Parsed networks survive a second validation (Server copies the CLI's config).
    dataclasses.replace(config).validate()
    # D-18: a list may come before the header names, assigned on the factory later.
    factory = HTTPFactory(ChannelLayer(), send_channel="test!", forwarded_allow_ips=["10.0.0.1"])
    factory.proxy_forwarded_address_header = "X-Forwarded-For"
    assert factory.config.proxy_forwarded_address_header == "X-Forwarded-For"


def test_describe_uses_the_callers_names():
    error = ConfigError("{0} requires {1}", "ping_timeout", "ping_interval")
    assert str(error) == "ping_timeout requires ping_interval"
    assert error.describe(str.upper) == "PING_TIMEOUT requires PING_INTERVAL"


def test_validation_happens_at_construction_not_on_reads():
    """Reads are plain attribute reads; `validate()` checks values assigned later."""
    config = ServerConfig()
    config.http_timeout = -1  # accepted until checked
    with pytest.raises(ConfigError, match="http_timeout is negative"):
        config.validate()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", "-5"], "-t/--http-timeout is negative (-5); use 0 or more"),
        (["--ping-interval", "-1"], "--ping-interval is negative (-1); use 0 or more"),
        (["--max_connections", "-2"], "--max-connections/--max_connections is negative (-2)"),
        (["--forwarded-allow-ips", "*"], "--forwarded-allow-ips requires --proxy-headers"),
    ],
)
def test_cli_words_config_errors_with_its_flags(args, message):
    """D-62: a ConfigError from the CLI's values is one line naming the flag, status 2."""
    stderr = io.StringIO()
    with redirect_stderr(stderr), pytest.raises(SystemExit) as exited:
        CommandLineInterface().run([*args, "daphne.tests.asgi:channel_layer"])
    assert exited.value.code == 2
    assert stderr.getvalue().startswith(f"daphne: error: {message}")
    assert stderr.getvalue().count("\n") == 1


def test_cli_endpoints_default_as_d9():
    assert cli_endpoints(None, None, None, None, []) == ["tcp:port=8000:interface=127.0.0.1"]
    assert cli_endpoints(None, 123, None, None, []) == ["tcp:port=123:interface=127.0.0.1"]
    assert cli_endpoints("::1", None, None, None, []) == [r"tcp:port=8000:interface=\:\:1"]
    assert cli_endpoints(None, None, "/tmp/d.sock", 5, []) == ["fd:fileno=5", "unix:/tmp/d.sock"]


# -- the Server facade (D-12) -------------------------------------------------------------


def test_server_keywords_build_a_config_and_attributes_read_and_write_it():
    server = Server({}, endpoints=["tcp:port=0"], http_timeout=7, ws_protocols=["chat"])
    assert server.config.http_timeout == 7 and server.http_timeout == 7
    assert server.config.ws_protocols == ["chat"]
    assert server.config.require_host is True  # RFC 9112 §3.2 for a real server
    server.http_timeout = 9
    server.ping_interval = 1
    assert (server.config.http_timeout, server.config.ping_interval) == (9, 1)
    # websocket_timeout None/0 becomes the layer's group_expiry (86400 without one).
    assert server.websocket_timeout == 86400
    assert Server(ChannelLayer(group_expiry=60), endpoints=["tcp:0"]).websocket_timeout == 60


def test_server_checks_its_keywords():
    with pytest.raises(ConfigError, match="graceful_timeout is negative"):
        Server({}, endpoints=["tcp:port=0"], graceful_timeout=-1)


def test_server_takes_a_config_and_keeps_its_own_copy():
    config = ServerConfig(endpoints=["tcp:port=0"], http_timeout=3)
    server = Server({}, config=config)
    assert server.http_timeout == 3 and server.endpoints == ["tcp:port=0"]
    server.http_timeout = 4
    assert config.http_timeout == 3 and config.websocket_timeout is None
    with pytest.raises(TypeError, match="set http_timeout there"):
        Server({}, http_timeout=5, config=config)
    with pytest.raises(UserWarning, match="No endpoints"):
        Server({}, config=ServerConfig())


def test_server_factory_shares_the_servers_config():
    """`Server.start()` builds its factory over the server's config (D-13 step 2)."""
    server = Server({}, endpoints=["tcp:port=0"], root_path="/app")
    factory = HTTPFactory(server.channel_layer, send_channel="x!", config=server.config)
    server.root_path = "/other"
    assert factory.root_path == "/other" and factory.require_host is True


# -- the HTTPFactory facade (D-18) ----------------------------------------------------------


def test_http_factory_is_one_class_in_two_modules():
    assert http_protocol.HTTPFactory is http_factory.HTTPFactory
    assert "HTTPFactory" in http_protocol.__all__


@pytest.mark.parametrize("first", ["daphne.http_factory", "daphne.http_protocol", "daphne.server"])
def test_http_factory_imports_in_any_order(first):
    code = (
        f"import {first}; from daphne.http_protocol import HTTPFactory as A; "
        "from daphne.http_factory import HTTPFactory as B; assert A is B"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_factory_assignment_after_construction_takes_effect():
    """D-18: attributes are read at request time: a timeout assigned later applies."""
    layer = ChannelLayer()
    factory, protocol, transport, clock = connect(layer)
    factory.timeout = 3
    assert factory.config.http_timeout == 3
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(4)
    assert transport.value().startswith(b"HTTP/1.1 503 Service Unavailable")


def test_factory_assignment_reaches_autobahn():
    """D-19: options autobahn copies follow assignments."""
    factory = HTTPFactory(ChannelLayer(), send_channel="test!")
    factory.ping_timeout = 7
    factory.websocket_max_message_size = 10
    assert factory.ws_factory.autoPingTimeout == 7
    assert factory.ws_factory.maxMessagePayloadSize == 10
    before = factory.ws_factory.openHandshakeTimeout
    factory.websocket_connect_timeout = 100
    assert factory.ws_factory.openHandshakeTimeout > before


def test_factory_takes_a_config():
    config = ServerConfig(http_timeout=2, max_header_count=10)
    factory = HTTPFactory(ChannelLayer(), send_channel="test!", config=config)
    assert factory.config is config
    assert (factory.timeout, factory.max_header_count) == (2, 10)
    assert HTTPFactory.max_header_count == 100  # D-64: the class still reads the default
    with pytest.raises(TypeError, match="set root_path there"):
        HTTPFactory(ChannelLayer(), send_channel="test!", root_path="/x", config=config)


def test_factory_keywords_are_checked():
    with pytest.raises(ConfigError, match="ping_interval is negative"):
        HTTPFactory(ChannelLayer(), send_channel="test!", ping_interval=-1)


# -- one field per option: every field is reachable where its metadata says -------------


def test_every_field_is_reachable_where_it_says():
    """Adding an option is one field: the CLI generates its flag from it, `Server` and
    `HTTPFactory` take and expose it, or the field says it is config-only."""
    cli = CommandLineInterface()
    cli_dests = {action.dest for action in cli.parser._actions}
    server_parameters = set(inspect.signature(Server).parameters)
    factory_parameters = {
        "http_timeout" if name == "timeout" else name
        for name in inspect.signature(HTTPFactory).parameters
    }
    for name in FIELDS:
        places = reach(name)
        assert (name in cli_dests or name in COMPOSED_OPTIONS) == (CLI in places), name
        assert (name in server_parameters) == (SERVER in places), name
        assert (name in factory_parameters) == (FACTORY in places), name
        if SERVER in places:
            option = inspect.getattr_static(Server, name)
            assert isinstance(option, ConfigOption) and option.field == name
        # Every option is readable on the factory that the protocols hold (D-18).
        factory_name = "timeout" if name == "http_timeout" else name
        if name not in PROCESS_FIELDS:
            option = inspect.getattr_static(HTTPFactory, factory_name)
            assert isinstance(option, ConfigOption) and option.field == name, name


def test_every_generated_cli_option_lands_in_the_config():
    """D-10: each generated flag's value reaches the Server's config unchanged."""
    cli = CommandLineInterface()
    args = cli.parser.parse_args(
        [
            "--ping-interval",
            "3",
            "--max-connections",
            "4",
            "--ws-protocol",
            "a",
            "b",
            "--force-sync",
            "daphne.tests.asgi:channel_layer",
        ]
    )
    config = cli._config(args)
    assert (config.ping_interval, config.max_connections) == (3, 4)
    assert config.ws_protocols == ["a", "b"] and config.force_sync is True
    assert config.websocket_connect_timeout == 5  # D-6: the CLI's own default


def test_every_field_is_documented():
    """docs/daphne.rst lists every ServerConfig field."""
    text = (ROOT / "docs" / "daphne.rst").read_text()
    missing = [name for name in FIELDS if f"``{name}``" not in text]
    assert missing == []
