"""`RedisSentinelChannelLayer`: the Redis layer on masters found through Sentinel (L-50..L-54).

Shard ``i`` is the current master of ``services[i]``. Master clients are
cached per address, so a lookup that finds the same master reuses its pool
(and its loaded scripts). A connection error or a ``READONLY`` reply drops
the service's cached master; the operation is then retried once on the
master Sentinel names now, but only when the failure proves nothing ran:
the connection could not be made, or the server refused the write (L-53,
L-62.3). A dropped connection mid-command is raised to the caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import redis
from redis.sentinel import MasterNotFoundError, Sentinel

from .core import RedisChannelLayer
from .errors import ShardConnectionError
from .options import client_kwargs, sentinel_addresses
from .shard import CONNECTION_ERRORS, Shard, describe_client

__all__ = ["RedisSentinelChannelLayer", "SentinelShards"]

T = TypeVar("T")

logger = logging.getLogger("asgi_redis")

_FAILOVER_SIGNS = (*CONNECTION_ERRORS, redis.ReadOnlyError)

# socket_* options also apply to the connections to the Sentinels (L-50).
_SENTINEL_OPTIONS = (
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_keepalive_options",
)


def _nothing_ran(exc: Exception) -> bool:
    """True when a failure proves the command did not run on a master.

    A ``READONLY`` refusal (the server is a replica now), or a connection that
    could not be made: redis-py's connect() failures read "Error 111 connecting
    to host:port. ..." or "Timeout connecting to server".
    """
    return isinstance(exc, redis.ReadOnlyError) or "connecting to" in str(exc)


class _Masters:
    """Where each service's master is, per `sentinel_refresh_interval` (L-53)."""

    def __init__(self, sentinel: Sentinel, kwargs: dict[str, Any], refresh_interval: float) -> None:
        self._sentinel = sentinel
        self._kwargs = kwargs
        self._refresh_interval = refresh_interval
        self._lock = threading.Lock()
        self._by_address: dict[tuple[str, int], redis.Redis] = {}
        self._by_service: dict[str, redis.Redis] = {}
        self._built_at = 0.0

    def client(self, service: str) -> redis.Redis:
        if self._refresh_interval <= 0:
            return self._lookup(service)
        with self._lock:
            if time.monotonic() - self._built_at > self._refresh_interval:
                self._by_service.clear()
                self._built_at = time.monotonic()
            client = self._by_service.get(service)
        if client is None:
            client = self._lookup(service)
            with self._lock:
                self._by_service[service] = client
        return client

    def clients(self) -> list[redis.Redis]:
        with self._lock:
            return list(self._by_address.values())

    def forget(self, service: str) -> None:
        with self._lock:
            self._by_service.pop(service, None)

    def _lookup(self, service: str) -> redis.Redis:
        address = self._master_address(service)
        with self._lock:
            client = self._by_address.get(address)
            if client is None:
                client = redis.Redis(host=address[0], port=address[1], **self._kwargs)
                self._by_address[address] = client
            return client

    def _master_address(self, service: str) -> tuple[str, int]:
        """Ask the Sentinels in turn, as the Sentinel client protocol says.

        ``GET-MASTER-ADDR-BY-NAME`` names the promoted replica as soon as the
        failover switches; ``SENTINEL MASTERS`` (redis-py's `discover_master`)
        may still flag it down for a moment after that.
        """
        failures = []
        for sentinel in self._sentinel.sentinels:
            try:
                ask: Callable[..., Any] = sentinel.execute_command
                reply = ask("SENTINEL GET-MASTER-ADDR-BY-NAME", service)
            except CONNECTION_ERRORS as exc:
                failures.append(f"{describe_client(sentinel)}: {exc}")
                continue
            if reply:
                return _as_str(reply[0]), int(reply[1])
            failures.append(f"{describe_client(sentinel)}: does not monitor {service!r}")
        raise MasterNotFoundError(f"No master found for {service!r}: " + "; ".join(failures))


def _as_str(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class SentinelShard(Shard):
    """Shard ``index``: whichever server is the master of `service` right now."""

    def __init__(self, index: int, service: str, masters: _Masters, sentinels: str) -> None:
        super().__init__(index, client=None)
        self.service = service
        self._masters = masters
        self._sentinels = sentinels

    def client(self) -> redis.Redis:
        try:
            return self._masters.client(self.service)
        except CONNECTION_ERRORS as exc:
            raise self.failed(exc, f"service {self.service!r} via Sentinels {self._sentinels}")

    def call(self, operation: Callable[[redis.Redis], T]) -> T:
        client = self.client()
        began = self.failures
        try:
            result = operation(client)
        except _FAILOVER_SIGNS as exc:
            self._masters.forget(self.service)  # failover: ask Sentinel again
            if not _nothing_ran(exc):
                raise self.failed(exc, describe_client(client))
            logger.info(
                "Redis service %r: master %s failed (%s); retrying on the master Sentinel "
                "names now",
                self.service,
                describe_client(client),
                exc,
            )
            return self._retry(operation)
        if not self._reachable:
            self.answered(describe_client(client), began)
        return result

    def lost(self, client: redis.Redis, exc: Exception) -> Exception:
        """As `Shard.lost`; the service's master is looked up again next time (L-53)."""
        self._masters.forget(self.service)
        return super().lost(client, exc)

    def _retry(self, operation: Callable[[redis.Redis], T]) -> T:
        """The one retry of L-53, on a freshly looked-up master."""
        client = self.client()
        began = self.failures
        try:
            result = operation(client)
        except _FAILOVER_SIGNS as exc:
            self._masters.forget(self.service)
            raise self.failed(exc, describe_client(client))
        if not self._reachable:
            self.answered(describe_client(client), began)
        return result


class SentinelShards:
    """The shards of a Sentinel layer: shard ``i`` is the master of ``services[i]`` (L-50).

    With no `services`, the first Sentinel that answers names them (L-51), on
    first use: discovering at construction would connect (L-62.1).
    """

    def __init__(
        self,
        sentinels: list[tuple[str, int]],
        services: list[str],
        client_kwargs: dict[str, Any],
        refresh_interval: float,
    ) -> None:
        self.hosts: list[Any] = sentinels
        self.services = services
        sentinel_kwargs = {
            key: value for key, value in client_kwargs.items() if key in _SENTINEL_OPTIONS
        }
        sentinel_kwargs.setdefault("retry", client_kwargs["retry"])
        make_sentinel: Callable[..., Sentinel] = Sentinel
        self.sentinel = make_sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)
        self.masters = _Masters(self.sentinel, client_kwargs, refresh_interval)
        self._lock = threading.Lock()
        self._shards: list[Shard] | None = None
        self._prepare: Callable[[Shard], None] | None = None

    def prepare(self, prepare: Callable[[Shard], None]) -> None:
        self._prepare = prepare  # the shards are built later (`shards`)

    def shards(self) -> list[Shard]:
        shards = self._shards
        if shards is None:
            with self._lock:
                shards = self._shards
                if shards is None:
                    shards = self._shards = self._build()
        return shards

    def open_clients(self) -> list[redis.Redis]:
        return [*self.masters.clients(), *self.sentinel.sentinels]

    def _build(self) -> list[Shard]:
        services = self.services or self._discover_services()
        self.services = services
        label = ", ".join(f"{host}:{port}" for host, port in self.hosts)
        shards: list[Shard] = [
            SentinelShard(index, service, self.masters, label)
            for index, service in enumerate(services)
        ]
        if self._prepare is not None:
            for shard in shards:
                self._prepare(shard)
        return shards

    def _discover_services(self) -> list[str]:
        """L-51: names from the first Sentinel that answers, sorted for a stable order."""
        failures = []
        for sentinel in self.sentinel.sentinels:
            try:
                masters = sentinel.sentinel_masters()
            except CONNECTION_ERRORS as exc:
                failures.append(f"{describe_client(sentinel)}: {exc}")
                continue
            if masters:
                return sorted(cast("dict[str, Any]", masters))
            failures.append(f"{describe_client(sentinel)}: monitors no masters")
        raise ShardConnectionError(
            "No Sentinel named any monitored service; " + "; ".join(failures)
        )


class RedisSentinelChannelLayer(RedisChannelLayer):
    """`RedisChannelLayer` whose shards are Sentinel-monitored masters (L-50)."""

    def __init__(
        self,
        expiry: int = 60,
        hosts: Sequence[Any] | None = None,
        prefix: str = "asgi:",
        group_expiry: int = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Any, int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        stats_prefix: str = "asgi-meta:",
        connection_kwargs: Mapping[str, Any] | None = None,
        services: Sequence[str] | None = None,
        sentinel_refresh_interval: float = 0,
        at_least_once: Sequence[Any] | None = None,
        ack_timeout: int | float = 30,
        max_deliveries: int = 5,
    ) -> None:
        checked_services = _check_services(services)
        if isinstance(sentinel_refresh_interval, bool) or not isinstance(
            sentinel_refresh_interval, (int, float)
        ):
            raise ValueError(
                f"sentinel_refresh_interval must be a number of seconds, "
                f"not {sentinel_refresh_interval!r}"
            )
        self.sentinel_refresh_interval = sentinel_refresh_interval
        source = SentinelShards(
            sentinel_addresses(hosts),
            checked_services,
            client_kwargs(connection_kwargs),
            sentinel_refresh_interval,
        )
        self._sentinel_shards = source
        super().__init__(
            expiry=expiry,
            prefix=prefix,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            symmetric_encryption_keys=symmetric_encryption_keys,
            stats_prefix=stats_prefix,
            connection_kwargs=connection_kwargs,
            at_least_once=at_least_once,
            ack_timeout=ack_timeout,
            max_deliveries=max_deliveries,
            shards=source,
        )
        # The Sentinel client and the master cache (tests look at them).
        self._sentinel = source.sentinel
        self._masters = source.masters

    @property
    def services(self) -> list[str]:
        """The services whose masters are the shards (discovered on first use, L-51)."""
        return self._sentinel_shards.services

    @services.setter
    def services(self, services: list[str]) -> None:
        # Takes effect if the shards are not built yet (as when it was an attribute).
        self._sentinel_shards.services = _check_services(services)

    def __str__(self) -> str:
        return f"{type(self).__name__}(services=={self.services!r})"


def _check_services(services: Any) -> list[str]:
    if not services:
        return []
    if isinstance(services, (str, bytes)) or not isinstance(services, Sequence):
        raise ValueError(
            f"services must be a list of service names, not {type(services).__name__} {services!r}"
        )
    for service in services:
        if not isinstance(service, str):
            raise ValueError(f"services entries must be str, not {service!r}")
    return list(services)
