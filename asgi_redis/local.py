"""`RedisLocalChannelLayer`: normal channels on this machine, the rest on Redis (L-45..L-49).

Normal channels (``http.request``, ``websocket.receive``, ...) carry most of
the traffic and are consumed by workers on the machine where the protocol
server sent them, so they travel through a local `asgi_ipc.IPCChannelLayer`
and never touch the network. Single-reader (``?``) and process-specific
(``!``) channels, groups, ``new_channel`` and statistics stay on Redis, where
every machine can reach them.

Deployment rule (L-49): every normal channel must be consumed on the machine
where it is sent. Each machine that runs a protocol server must also run
workers for every channel the application handles; a normal-channel message
is never seen by workers on other machines.

Routing (L-47):

- ``send``: normal names through IPC; ``?`` and ``!`` names to Redis.
- ``receive`` of only normal names: IPC, honouring ``block``; of only ``?``/``!``
  names: Redis, honouring ``block``; of both: IPC without blocking, then, if that
  was empty, Redis with ``block``.
- ``new_channel``, groups and statistics: Redis.
- ``flush``: both.

Groups live in Redis, but a group send delivers each normal member through
the IPC layer of the sending machine (L-48). Statistics count Redis traffic
only; encryption applies only to Redis traffic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from asgi_ipc import IPCChannelLayer
from channels.layers.base import BaseChannelLayer
from channels.layers.delivery import refuse_at_least_once

from .core import RedisChannelLayer
from .socket_send import SocketSendUnsupported

__all__ = ["RedisLocalChannelLayer"]


class RedisLocalChannelLayer(RedisChannelLayer):
    """A `RedisChannelLayer` whose normal channels stay on this machine (L-46)."""

    def __init__(
        self,
        expiry: int = 60,
        prefix: str = "asgi:",
        group_expiry: int = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Any, int] | None = None,
        **kwargs: Any,
    ) -> None:
        # Issue 17: normal names travel through the local IPC layer, which has no leases.
        refuse_at_least_once("RedisLocalChannelLayer", kwargs)
        super().__init__(
            expiry=expiry,
            prefix=prefix,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            **kwargs,
        )
        # L-46: "asgi:" -> "asgi", so standalone IPC layers with that prefix share it.
        self.local_layer = IPCChannelLayer(
            prefix=prefix.replace(":", ""),
            expiry=expiry,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
        )

    @staticmethod
    def _is_local(name: str) -> bool:
        return "?" not in name and "!" not in name

    def send(self, channel: str, message: dict[str, Any]) -> None:
        self.valid_channel_name(channel)
        if self._is_local(channel):
            self.local_layer.send(channel, message)
        else:
            super().send(channel, message)

    def receive(
        self, channels: Iterable[str], block: bool = False
    ) -> tuple[str | None, dict[str, Any] | None]:
        names = self.receive_names(channels)
        local = [name for name in names if self._is_local(name)]
        remote = [name for name in names if not self._is_local(name)]
        if not remote:
            return self.local_layer.receive(local, block=block) if local else (None, None)
        if local:
            found = self.local_layer.receive(local, block=False)
            if found[0] is not None:
                return found
        return super().receive(remote, block=block)

    def send_many(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> list[Exception | None]:
        """As `RedisChannelLayer.send_many`, normal names through IPC (L-47).

        The ``?``/``!`` pairs go to Redis first (validated before any is sent);
        normal ones then go one by one to the local layer, a full one giving
        its `ChannelFull` as the result. Once a local channel was full, its
        later messages in the call are refused too, so none of them can
        overtake the refused one (A-19, A-25), as in one Redis script.
        """
        pairs = list(messages)
        results: list[Exception | None] = [None] * len(pairs)
        remote = [
            position for position, (channel, _) in enumerate(pairs) if not self._is_local(channel)
        ]
        local_layer = self.local_layer
        for channel, message in pairs:
            if self._is_local(channel):
                # Checked before anything is sent, as for the Redis pairs.
                local_layer.valid_channel_name(channel)
                local_layer.check_size(*local_layer.snapshot(message), channel)
        sent = super().send_many(pairs[position] for position in remote)
        for position, result in zip(remote, sent, strict=True):
            results[position] = result
        full: dict[str, Exception] = {}
        for position, (channel, message) in enumerate(pairs):
            if self._is_local(channel):
                if channel in full:
                    results[position] = full[channel]
                    continue
                try:
                    self.local_layer.send(channel, message)
                except self.ChannelFull as exc:
                    results[position] = full[channel] = exc
        return results

    def send_many_then_receive(
        self,
        messages: Iterable[tuple[str, dict[str, Any]]],
        channels: Iterable[str],
        block: bool = False,
    ) -> tuple[list[Exception | None], tuple[str | None, dict[str, Any] | None]]:
        """`send_many`, then `receive`, each routed as above (L-47): the base
        class's way, since normal names do not travel through Redis at all."""
        return BaseChannelLayer.send_many_then_receive(self, messages, channels, block)

    def send_group(self, group: str, message: dict[str, Any]) -> None:
        """Members from Redis; normal ones served by the local IPC layer (L-48)."""
        self.valid_group_name(group)
        members = self.group_channels(group)
        local = [member for member in members if self._is_local(member)]
        remote = [member for member in members if not self._is_local(member)]
        if local:
            self.local_layer.send_to_members(group, local, message)
        if remote:
            # The core's delivery: one PUSH per shard, one bundle per P! (A-93),
            # full members counted and logged, unreachable shards raised
            # after the others are served (L-62.3).
            payload = self._sender.payload(message, f"group {group}")
            self._groups.send_to_members(group, remote, payload)

    def socket_sender(self) -> Any:
        """Not offered: normal names travel through IPC, which the socket sender
        cannot reach, so daphne keeps the blocking `send_many` (IPC sends do not
        wait on the network; issue 15)."""
        raise SocketSendUnsupported("RedisLocalChannelLayer sends normal channels through IPC")

    def flush(self) -> None:
        super().flush()
        self.local_layer.flush()
