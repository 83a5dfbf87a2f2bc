"""Bindings that speak the WebSocket multiplexer format (C-62, C-63).

Outbound messages are ``{"stream": ..., "payload": {"action", "pk", "data", "model"}}`` text
frames, the format ``WebsocketDemultiplexer`` and the JavaScript ``WebSocketBridge``
demultiplex. Inbound, the payload's ``data`` goes through Django's serializers so field
types are converted and validated the same way fixtures are.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model

from ..generic.websockets import WebsocketMultiplexer
from ..sessions import enforce_ordering
from .base import Binding


class InvalidBindingMessage(ValueError):
    """An inbound binding frame is not the JSON object ``{"action", "pk"?, "data"?}``."""


class WebsocketBinding(Binding):
    """A binding whose messages travel on a multiplexed WebSocket stream (C-62).

    Set ``stream`` to the stream name; route ``consumer`` (or put it in a
    ``WebsocketDemultiplexer``'s ``consumers``) for inbound changes.
    """

    model = None  # abstract

    stream: str | None = None
    strict_ordering = False
    slight_ordering = False

    # Outbound

    @classmethod
    def encode(cls, stream: str, payload: dict[str, Any]) -> dict[str, Any]:
        return WebsocketMultiplexer.encode(stream, payload)

    def serialize(self, instance: Model, action: str) -> dict[str, Any]:
        return {
            "action": action,
            "pk": instance.pk,
            "data": self.serialize_data(instance),
            "model": self.model_label,
        }

    def serialize_data(self, instance: Model) -> dict[str, Any]:
        """The instance's allowed fields as Django's JSON serializer writes them."""
        if self.fields is not None:
            fields = None if _is_all(self.fields) else list(self.fields)
        else:
            excluded = set(self.exclude or ())
            fields = [f.name for f in instance._meta.get_fields() if f.name not in excluded]
        data = serializers.serialize("json", [instance], fields=fields)
        return json.loads(data)[0]["fields"]

    # Inbound

    @classmethod
    def get_handler(cls) -> Callable[..., None]:
        handler = super().get_handler()
        if cls.strict_ordering:
            return enforce_ordering(handler, slight=False)
        if cls.slight_ordering:
            # Raises the C-45 error telling the user to drop slight ordering.
            return enforce_ordering(handler, slight=True)
        return handler

    @classmethod
    def trigger_inbound(cls, message: Any, **kwargs: Any) -> None:
        # A demultiplexer also hands connect and disconnect to every stream consumer.
        if message.channel.name != "websocket.receive":
            return
        super().trigger_inbound(message, **kwargs)

    def deserialize(self, message: Any) -> tuple[str, Any, Any]:
        text = message.get("text")
        if text is None:
            raise InvalidBindingMessage(
                f"{type(self).__qualname__} got a frame without text; binding frames are "
                f'JSON text like {{"action": "update", "pk": 1, "data": {{...}}}}.'
            )
        try:
            body = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidBindingMessage(
                f"{type(self).__qualname__} got a frame that is not JSON ({error})."
            ) from error
        if not isinstance(body, dict) or "action" not in body:
            raise InvalidBindingMessage(
                f"{type(self).__qualname__} needs a JSON object with an 'action' key "
                f"(create, update or delete), got {text[:100]!r}."
            )
        return body["action"], body.get("pk"), body.get("data")

    def _hydrate(self, pk: Any, data: dict[str, Any]) -> Any:
        """A ``DeserializedObject`` built from client data by Django's python deserializer."""
        if not isinstance(data, dict):
            raise InvalidBindingMessage(
                f"{type(self).__qualname__} needs 'data' to be an object of field values, "
                f"got {type(data).__name__}."
            )
        serialized = [{"pk": pk, "model": self.model_label, "fields": data}]
        return next(iter(serializers.deserialize("python", serialized)))

    def create(self, data: dict[str, Any]) -> None:
        # Only the fields this binding exposes may be set from a client, as for update:
        # 1.1 let a create set any field (e.g. a flag the binding never sends).
        if isinstance(data, dict):
            data = {name: value for name, value in data.items() if self._field_allowed(name)}
        self._hydrate(None, data).save()

    def update(self, pk: Any, data: dict[str, Any]) -> None:
        instance = self._model_class().objects.get(pk=pk)
        hydrated = self._hydrate(pk, data).object
        for name in data:
            if self._field_allowed(name):
                setattr(instance, name, getattr(hydrated, name))
        instance.save()

    def _field_allowed(self, name: str) -> bool:
        if self.fields is not None:
            return _is_all(self.fields) or name in self.fields
        return name not in (self.exclude or ())


def _is_all(fields: Any) -> bool:
    return fields == "__all__" or list(fields) == ["__all__"]


class WebsocketBindingWithMembers(WebsocketBinding):
    """Also sends the attributes named in ``send_members`` (dotted paths allowed) (C-63).

    Each value is called if callable, normalised through ``DjangoJSONEncoder`` and put in
    ``data`` under its path with ``.`` replaced by ``__``.
    """

    model = None  # abstract

    send_members: list[str] = []
    encoder = DjangoJSONEncoder()

    def serialize_data(self, instance: Model) -> dict[str, Any]:
        data = super().serialize_data(instance)
        members = {}
        for path in self.send_members:
            value: Any = instance
            for attribute in path.split("."):
                value = getattr(value, attribute)
            members[path.replace(".", "__")] = value() if callable(value) else value
        data.update(json.loads(self.encoder.encode(members)))
        return data
