"""Checking and normalising the constructor options of the Redis layers (L-18..L-20, L-50).

Everything here fails at construction with a message naming the option, so a
bad setting never surfaces later as a confusing Redis error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "MIN_SOCKET_TIMEOUT",
    "check_prefix",
    "check_whole_seconds",
    "client_kwargs",
    "redis_urls",
    "sentinel_addresses",
]

# L-20: the socket must outlast the 5-second blocking pop.
MIN_SOCKET_TIMEOUT = 5


def check_whole_seconds(option: str, value: Any) -> None:
    """L-20: Redis TTLs are whole seconds, so only an `int` is accepted."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(
            f"{option} must be a whole number of seconds (int) for the Redis layers, not {value!r}"
        )


def check_prefix(option: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{option} must be a str, not {type(value).__name__} {value!r}")


def _check_host_list(hosts: Any) -> None:
    if isinstance(hosts, (str, bytes)):
        raise ValueError(
            f"hosts must be a list of hosts, not a bare string; write hosts=[{hosts!r}]"
        )
    if not isinstance(hosts, Sequence):
        raise ValueError(f"hosts must be a list, not {type(hosts).__name__}")


def _address(entry: Any) -> tuple[str, int] | None:
    if (
        isinstance(entry, (tuple, list))
        and len(entry) == 2
        and isinstance(entry[0], str)
        and isinstance(entry[1], int)
        and not isinstance(entry[1], bool)
    ):
        return entry[0], entry[1]
    return None


def redis_urls(hosts: Any) -> list[str]:
    """L-19: URLs are used as is; ``(host, port)`` becomes ``redis://host:port/0``."""
    if not hosts:
        return ["redis://localhost:6379/0"]
    _check_host_list(hosts)
    urls = []
    for entry in hosts:
        if isinstance(entry, str):
            urls.append(entry)
            continue
        address = _address(entry)
        if address is None:
            raise ValueError(f"hosts entry {entry!r} must be a redis:// URL or a (host, port) pair")
        urls.append(f"redis://{address[0]}:{address[1]}/0")
    return urls


def sentinel_addresses(hosts: Any) -> list[tuple[str, int]]:
    """L-50: Sentinels are ``(host, port)`` pairs only; no URLs."""
    if not hosts:
        return [("localhost", 26379)]
    _check_host_list(hosts)
    addresses = []
    for entry in hosts:
        address = _address(entry)
        if address is None:
            raise ValueError(
                f"Sentinel hosts entry {entry!r} must be a (host, port) pair; "
                "URLs are not accepted for Sentinels"
            )
        addresses.append(address)
    return addresses


# Seconds a connect to a Redis server may take (L-62), unless connection_kwargs says.
DEFAULT_CONNECT_TIMEOUT = 5.0


def client_kwargs(connection_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments for every redis-py client of the layer (L-18, L-20, L-62)."""
    if connection_kwargs is None:
        connection_kwargs = {}
    if not isinstance(connection_kwargs, Mapping):
        raise ValueError(
            f"connection_kwargs must be a dict, not {type(connection_kwargs).__name__}"
        )
    kwargs = dict(connection_kwargs)
    timeout = kwargs.get("socket_timeout")
    if timeout is not None and timeout < MIN_SOCKET_TIMEOUT:
        raise ValueError(
            f"connection_kwargs['socket_timeout'] is {timeout}; it must be at least "
            f"{MIN_SOCKET_TIMEOUT} seconds to outlast the blocking pop"
        )
    if kwargs.get("decode_responses"):
        raise ValueError(
            "connection_kwargs['decode_responses'] must not be True: "
            "the layer stores binary payloads"
        )
    # L-62.3: redis-py retries failed commands by default, which could repeat a
    # pop or a send that already took effect. The layer decides what to retry.
    kwargs.setdefault("retry", Retry(NoBackoff(), 0))
    # redis-py before 6 waits for a connect without limit (the OS gives up after about
    # two minutes on a host that drops packets); daphne connects on its reactor thread.
    kwargs.setdefault("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    return kwargs
