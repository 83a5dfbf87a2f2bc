"""`ServerConfig`: every daphne option in one place, with its validation (issue 16 item 3).

The CLI (`daphne.cli`), ``manage.py runserver``, `Server` and `HTTPFactory` all build or
share one `ServerConfig`. `Server`'s keyword arguments (D-12) and `HTTPFactory`'s (D-18)
stay as the 1.4 ways in: each builds a config. Their same-named attributes are
`ConfigOption` descriptors over it, so assigning one after construction takes effect
for later requests, as D-18 requires.

Each field's metadata says where the option can be given (`reach`) and, for the CLI, its
flags and help: `daphne.cli` generates its options from them, so a new option is one
field here.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .proxy import InvalidAllowedIP, parse_allowed_ips

__all__ = [
    "ConfigError",
    "ConfigOption",
    "DefaultedOption",
    "ServerConfig",
    "build_endpoint_description_strings",
    "cli_endpoints",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
]

# D-9: where the CLI listens when no endpoint option is given.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

# Where an option can be given: the `daphne` command, `Server(...)` keywords, and
# `HTTPFactory(...)` keywords. Every field can be set on a `ServerConfig`.
CLI, SERVER, FACTORY = "cli", "server", "factory"


class ConfigError(ValueError):
    """An option's value cannot be used; the message says what to change.

    `template` names the options involved as ``{0}``, ``{1}``...; `str()` spells them as
    `ServerConfig` fields, `describe(namer)` as the caller's names (the CLI's flags).
    """

    def __init__(self, template: str, *fields: str) -> None:
        self.template = template
        self.fields = fields
        super().__init__(template.format(*fields))

    @property
    def field(self) -> str:
        """The option whose value is wrong."""
        return self.fields[0]

    def describe(self, namer: Callable[[str], str]) -> str:
        return self.template.format(*(namer(name) for name in self.fields))


# -- checks: each takes (field name, value) and raises ConfigError ------------------


def _shown(value: Any) -> str:
    """`value`'s repr, safe inside a `ConfigError` template."""
    return repr(value).replace("{", "{{").replace("}", "}}")


def _number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{{0}} must be a number, not {_shown(value)}", name)


def _non_negative(name: str, value: Any) -> None:
    _number(name, value)
    if value < 0:
        raise ConfigError(f"{{0}} is negative ({value}); use 0 or more", name)


def _seconds_or_none(name: str, value: Any) -> None:
    if value is not None:  # negative = unlimited (D-12)
        _number(name, value)


def _integer(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{{0}} must be an integer, not {_shown(value)}", name)


def _text_or_none(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, (str, bytes)):
        raise ConfigError(f"{{0}} must be a header name (str) or None, not {_shown(value)}", name)


def _text(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"{{0}} must be a str, not {_shown(value)}", name)


def _names(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, (str, bytes)):
        raise ConfigError(
            f"{{0}} must be a list of strings such as [{_shown(value)}], not {_shown(value)}", name
        )
    if not isinstance(value, Iterable) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{{0}} must be a list of strings, not {_shown(value)}", name)


def _anything(name: str, value: Any) -> None:
    pass


def _port_or_none(name: str, value: Any) -> None:
    if value is None:
        return
    _integer(name, value)
    if not 0 <= value <= 65535:
        raise ConfigError(f"{{0}} must be a TCP port (0..65535), not {_shown(value)}", name)


def _callable_or_none(name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise ConfigError(
            f"{{0}} must be a callable (protocol, action, details), not {_shown(value)}", name
        )


# -- fields ---------------------------------------------------------------------------


def option(
    initial: Any,
    check: Callable[[str, Any], None],
    reach: tuple[str, ...],
    help: str,
    *flags: str,
    **argparse_options: Any,
) -> Any:
    """A `ServerConfig` field; `flags` and `argparse_options` make its CLI option."""
    metadata = {
        "check": check,
        "reach": reach,
        "help": help,
        "flags": flags,
        "cli": argparse_options,
    }
    if isinstance(initial, list):
        return field(default_factory=lambda: list(initial), metadata=metadata)
    return field(default=initial, metadata=metadata)


ALL = (CLI, SERVER, FACTORY)
SERVER_ONLY = (SERVER,)
CLI_AND_SERVER = (CLI, SERVER)
CONFIG_ONLY = ()
SECONDS = {"metavar": "SECONDS", "type": int}
BYTES = {"metavar": "BYTES", "type": int}


@dataclass
class ServerConfig:
    """Every daphne option (D-6, D-12, D-18, D-64, issue 15). Validated when built
    (`validate()` checks again after changes); attributes may be assigned afterwards."""

    # -- where to listen and how the process runs (D-9, D-12, D-13, D-17) --------------
    endpoints: list[str] = option(
        [], _names, CLI_AND_SERVER, "Twisted endpoint descriptions (the CLI builds them, D-9)"
    )
    signal_handlers: bool = option(True, _anything, SERVER_ONLY, "install SIGINT/SIGTERM handlers")
    verbosity: int = option(
        1, _integer, CLI_AND_SERVER, "How verbose to make the output", "-v", "--verbosity", type=int
    )
    force_sync: bool = option(
        False,
        _anything,
        CLI_AND_SERVER,
        "Force the server to use synchronous mode on its ASGI channel layer",
        "--force-sync",
        action="store_true",
    )
    reuse_port: bool = option(
        False,
        _anything,
        CLI_AND_SERVER,
        "Listen on TCP endpoints with SO_REUSEPORT, so several daphne processes share the "
        "port (Linux)",
        "--reuse-port",
        action="store_true",
    )
    metrics_port: int | None = option(
        None,
        _port_or_none,
        CLI_AND_SERVER,
        "Serve Prometheus metrics, /healthz and /readyz on this port (off by default)",
        "--metrics-port",
        metavar="PORT",
        type=int,
    )
    metrics_host: str = option(
        "127.0.0.1",
        _text,
        CLI_AND_SERVER,
        "The address the metrics port listens on",
        "--metrics-host",
        metavar="HOST",
    )
    graceful_timeout: int | float = option(
        10,
        _non_negative,
        CLI_AND_SERVER,
        "Seconds a stop lets in-flight HTTP responses finish",
        "--graceful-timeout",
        **SECONDS,
    )
    action_logger: Any = option(
        None, _callable_or_none, ALL, "callable (protocol, action, details); CLI: --access-log"
    )
    # -- HTTP (D-24, D-29, D-49, D-64, D-66, issue 15) -----------------------------------
    http_timeout: int | float = option(
        120,
        _non_negative,
        ALL,  # HTTPFactory calls it `timeout`
        "How long to wait for worker server before timing out HTTP connections",
        "-t",
        "--http-timeout",
        **SECONDS,
    )
    http_body_timeout: int | float = option(
        120,
        _non_negative,
        ALL,
        "Seconds a request body may take to arrive in all; slower gets 408 (0 = no limit)",
        "--http-body-timeout",
        "--http_body_timeout",
        **SECONDS,
    )
    http_max_body_size: int = option(
        0,
        _non_negative,
        ALL,
        "Largest HTTP request body in bytes (0 = no limit)",
        "--http-max-body-size",
        **BYTES,
    )
    root_path: str = option(
        "", _text, ALL, "The setting for the ASGI root_path variable", "--root-path", metavar="PATH"
    )
    proxy_forwarded_address_header: str | None = option(
        None, _text_or_none, ALL, "client address header; CLI: --proxy-headers"
    )
    proxy_forwarded_port_header: str | None = option(
        None, _text_or_none, ALL, "client port header; CLI: --proxy-headers"
    )
    proxy_forwarded_proto_header: str | None = option(
        None, _text_or_none, ALL, "client scheme header; CLI: --proxy-headers"
    )
    forwarded_allow_ips: list[Any] | str | None = option(
        None,
        _anything,  # checked by validate(): it depends on the proxy header
        ALL,
        "Comma-separated proxy addresses/networks whose forwarded headers are trusted",
        "--forwarded-allow-ips",
        metavar="LIST",
    )
    require_host: bool = option(
        True, _anything, CONFIG_ONLY, "RFC 9112 §3.2: 400 without one valid Host"
    )
    max_header_size: int = option(16384, _non_negative, CONFIG_ONLY, "request head bytes")
    max_header_count: int = option(100, _non_negative, CONFIG_ONLY, "request header lines")
    head_timeout: int | float = option(60, _non_negative, CONFIG_ONLY, "seconds for the head")
    body_idle_timeout: int | float = option(
        60, _non_negative, CONFIG_ONLY, "seconds a request body may stall; then 408"
    )
    # -- WebSocket (D-19, D-43, D-65, A-47) -----------------------------------------------
    websocket_timeout: int | float | None = option(
        None,
        _seconds_or_none,
        ALL,
        "Maximum time to allow a websocket to be connected. -1 for infinite. "
        "(default: the layer's group_expiry, or 86400)",
        "--websocket_timeout",
        "--websocket-timeout",
        **SECONDS,
    )
    websocket_connect_timeout: int | float = option(
        20,
        _non_negative,
        ALL,
        "Maximum time to wait for the application to accept or reject a WebSocket",
        "--websocket_connect_timeout",
        "--websocket-connect-timeout",
        default=5,  # D-6: the CLI's default differs from Server's (D-12)
        **SECONDS,
    )
    websocket_handshake_timeout: int | float = option(
        5, _non_negative, (SERVER, FACTORY), "autobahn's opening-handshake timeout (D-10)"
    )
    ping_interval: int | float = option(
        20,
        _non_negative,
        ALL,
        "The number of seconds a WebSocket must be idle before a keepalive ping is sent",
        "--ping-interval",
        **SECONDS,
    )
    ping_timeout: int | float = option(
        30,
        _non_negative,
        ALL,
        "The number of seconds before a WebSocket is closed if no response to a ping",
        "--ping-timeout",
        **SECONDS,
    )
    ws_protocols: list[str] | None = option(
        None,
        _names,
        ALL,
        "The WebSocket protocols you wish to support",
        "--ws-protocol",
        nargs="*",
        metavar="NAME",
    )
    websocket_max_message_size: int = option(
        1048576,
        _non_negative,
        ALL,
        "Largest WebSocket message in bytes (0 = no limit)",
        "--websocket-max-message-size",
        **BYTES,
    )
    # -- no message lost, no socket dropped (issue 17 items 3 and 4) ---------------------
    http_queue_timeout: int | float = option(
        5,
        _non_negative,
        CLI_AND_SERVER,
        "Seconds an HTTP request waits for room on a full http.request channel before it "
        "gets 503 with Retry-After (0 = at once; at most --http-timeout)",
        "--http-queue-timeout",
        **SECONDS,
    )
    websocket_drain_time: int | float = option(
        5,
        _non_negative,
        CLI_AND_SERVER,
        "Seconds over which a stop closes open WebSockets (code 1012) in batches, so "
        "clients do not reconnect at once (0 = all at once; within --graceful-timeout)",
        "--websocket-drain-time",
        **SECONDS,
    )
    # -- connections (issue 15) -------------------------------------------------------
    max_outbound_buffer: int = option(
        1048576,
        _non_negative,
        ALL,
        "Unsent bytes a client may leave unread before it is closed (0 = no limit)",
        "--max-outbound-buffer",
        "--max_outbound_buffer",
        **BYTES,
    )
    outbound_full_timeout: int | float = option(
        5, _non_negative, CONFIG_ONLY, "seconds a connection may stay over max_outbound_buffer"
    )
    max_connections: int = option(
        0,
        _non_negative,
        ALL,
        "Open connections beyond which new ones get 503 (0 = no limit)",
        "--max-connections",
        "--max_connections",
        metavar="N",
        type=int,
    )

    # -- WebSocket and HTTP/2 completeness (issue 21) --------------------------------------
    ws_compression: bool = option(
        True,
        _anything,
        CLI_AND_SERVER,
        "Negotiate permessage-deflate (RFC 7692) with WebSocket clients that offer it",
        "--ws-compression",
        action=argparse.BooleanOptionalAction,
    )
    h2c: bool = option(
        False,
        _anything,
        CLI_AND_SERVER,
        "Serve HTTP/2 over cleartext to clients that start with its preface (prior knowledge)",
        "--h2c",
        action="store_true",
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `ConfigError` for the first option whose value cannot be used."""
        for spec in dataclasses.fields(self):
            spec.metadata["check"](spec.name, getattr(self, spec.name))
        allowed = self.forwarded_allow_ips
        if allowed is None:
            return
        if isinstance(allowed, str) and not self.proxy_forwarded_address_header:
            # D-6, D-62: an allow list without forwarded headers would do nothing. Only
            # for the comma-separated form (a command line's, final); a list may precede
            # the header names, which D-18 lets callers assign after construction.
            raise ConfigError(
                "{0} requires {1}", "forwarded_allow_ips", "proxy_forwarded_address_header"
            )
        entries = allowed if isinstance(allowed, str) else [str(entry) for entry in allowed]
        try:
            parsed = parse_allowed_ips(entries)
        except InvalidAllowedIP as error:
            problem = str(error).removeprefix("--forwarded-allow-ips")
            problem = problem.replace("{", "{{").replace("}", "}}")
            raise ConfigError("{0}" + problem, "forwarded_allow_ips")
        if isinstance(allowed, str):  # the CLI's comma-separated form
            self.forwarded_allow_ips = parsed

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each option's default (D-12's, where Server and HTTPFactory differ)."""
        values = {}
        for spec in dataclasses.fields(cls):
            if spec.default is not dataclasses.MISSING:
                values[spec.name] = spec.default
            elif spec.default_factory is not dataclasses.MISSING:
                values[spec.name] = spec.default_factory()
        return values


def names_for(where: str) -> list[str]:
    """The `ServerConfig` fields that `where` (`CLI`, `SERVER`, `FACTORY`) can set."""
    return [
        spec.name for spec in dataclasses.fields(ServerConfig) if where in spec.metadata["reach"]
    ]


class ConfigOption(property):
    """An attribute of `Server` or `HTTPFactory` that reads and writes field `field` of
    the owner's ``config`` (D-12, D-18). A `property` whose getter is C code: protocols
    read these per request and per frame. `on_set` names a method of the owner to call
    after an assignment (e.g. to pass a value on to autobahn)."""

    def __init__(self, field: str, on_set: str | None = None) -> None:
        def set_option(owner: Any, value: Any) -> None:
            setattr(owner.config, field, value)
            if on_set is not None:
                getattr(owner, on_set)()

        super().__init__(operator.attrgetter(f"config.{field}"), set_option)
        self.field = field
        self.default = ServerConfig.defaults()[field]


class DefaultedOption(ConfigOption):
    """A `ConfigOption` that reads as the field's default on the class, as 1.4's class
    attributes did (D-64: ``HTTPFactory.max_header_size``). Slower to read: use it only
    where that matters."""

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self.default
        return super().__get__(instance, owner)


def option_arguments(function: Any, renamed: dict[str, str]) -> dict[str, tuple[str, Any]]:
    """`function`'s option parameters (those naming a `ServerConfig` field, directly or
    through `renamed`): parameter name → (field name, the parameter's default)."""
    fields = {spec.name for spec in dataclasses.fields(ServerConfig)}
    options = {}
    for parameter in inspect.signature(function).parameters.values():
        field_name = renamed.get(parameter.name, parameter.name)
        if field_name in fields:
            options[parameter.name] = (field_name, parameter.default)
    return options


def refuse_both(given: dict[str, Any], options: dict[str, tuple[str, Any]], owner: str) -> None:
    """A ``config`` plus option keywords would leave one of them ignored: refuse it."""
    both = [name for name, (_, default) in options.items() if given[name] != default]
    if both:
        raise TypeError(
            f"{owner}(config=...) takes its options from the config; set "
            f"{', '.join(both)} there instead of as keyword arguments"
        )


# -- endpoints (D-9, D-11) --------------------------------------------------------------


def build_endpoint_description_strings(
    host: str | None = None,
    port: int | None = None,
    unix_socket: str | None = None,
    file_descriptor: int | None = None,
) -> list[str]:
    """Twisted endpoint descriptions for the classic options (D-11)."""
    endpoints = []
    if host and port is not None:
        host = host.strip("[]").replace(":", r"\:")
        endpoints.append(f"tcp:port={int(port)}:interface={host}")
    elif any([host, port]):
        raise ValueError("TCP binding requires both port and host kwargs.")
    if unix_socket:
        endpoints.append(f"unix:{unix_socket}")
    if file_descriptor is not None:
        endpoints.append(f"fd:fileno={int(file_descriptor)}")
    return endpoints


def cli_endpoints(
    host: str | None,
    port: int | None,
    unix_socket: str | None,
    file_descriptor: int | None,
    socket_strings: list[str],
) -> list[str]:
    """D-9: the CLI's endpoints, defaulting to 127.0.0.1:8000 (no de-duplication)."""
    if not any([host, port is not None, unix_socket, file_descriptor is not None, socket_strings]):
        host, port = DEFAULT_HOST, DEFAULT_PORT
    elif host and port is None:
        port = DEFAULT_PORT
    elif port is not None and not host:
        host = DEFAULT_HOST
    return sorted(
        socket_strings
        + build_endpoint_description_strings(host, port, unix_socket, file_descriptor)
    )
