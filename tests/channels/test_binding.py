"""Data binding: model changes to groups, inbound frames to model changes (C-58..C-63).

Outbound messages are read from real group members of a fresh in-memory layer; inbound
frames go through the project's test client (`WSClient`), the real demultiplexer and the
session/auth decorators, against the SQLite test database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.db.models.signals import post_save

from channels.binding.base import CREATE, DELETE, UPDATE, Binding, BindingMetaclass
from channels.binding.websockets import (
    InvalidBindingMessage,
    WebsocketBinding,
    WebsocketBindingWithMembers,
)
from channels.generic.websockets import WebsocketDemultiplexer
from channels.routing import route, route_class
from channels.test import WSClient, apply_routes
from tests.channels.helpers import fresh_layer
from tests.testproject.testapp.models import Author, Note

pytestmark = pytest.mark.django_db

MEMBER = "client.member"


@pytest.fixture
def layer() -> Iterator:
    with fresh_layer() as wrapper:
        yield wrapper


@pytest.fixture
def bindings() -> Iterator[list]:
    """Bindings created by a test; their signals are disconnected afterwards."""
    created: list[type[Binding]] = []
    yield created
    for binding in created:
        binding.unregister()


def make_binding(bindings, base=WebsocketBinding, **attrs):
    """A binding class for Note, connected at creation (apps are ready, C-58)."""
    body = {
        "model": Note,
        "stream": "notes",
        "fields": ["title", "body", "room"],
        "group_names": classmethod(lambda cls, instance: [f"room-{instance.room}"]),
        "has_permission": lambda self, user, action, pk: True,
        **attrs,
    }
    binding = type("NoteBinding", (base,), body)
    bindings.append(binding)
    return binding


def frames(layer, channel=MEMBER) -> list[dict]:
    """Every stream frame waiting on ``channel``, decoded."""
    received = []
    while True:
        name, content = layer.receive([channel], block=False)
        if name is None:
            return received
        received.append(json.loads(content["text"]))


class TestRegistration:
    """C-58, C-59."""

    def test_register_all_registers_recorded_classes_then_new_ones(
        self, monkeypatch, layer, bindings
    ):
        monkeypatch.setattr(BindingMetaclass, "binding_classes", [])
        monkeypatch.setattr(BindingMetaclass, "register_immediately", False)
        early = make_binding(bindings)
        assert BindingMetaclass.binding_classes == [early]
        layer.group_add("room-lobby", MEMBER)

        Note.objects.create(title="before ready")
        assert frames(layer) == [], "nothing is connected before register_all()"

        BindingMetaclass.register_all()
        assert BindingMetaclass.register_immediately is True
        Note.objects.create(title="after ready")
        assert [f["payload"]["data"]["title"] for f in frames(layer)] == ["after ready"]

        late = make_binding(bindings, group_names=classmethod(lambda cls, i: ["late"]))
        layer.group_add("late", MEMBER)
        Note.objects.create(title="late")
        assert sorted(f["payload"]["data"]["title"] for f in frames(layer)) == ["late", "late"]
        assert BindingMetaclass.binding_classes == [early, late]

    def test_root_and_abstract_classes_bind_nothing(self):
        assert Binding not in BindingMetaclass.binding_classes
        assert WebsocketBinding.get_registered_models() == []
        assert WebsocketBindingWithMembers.get_registered_models() == []

    def test_model_missing_by_inheritance_is_an_error(self):
        with pytest.raises(ValueError, match="has no model"):

            class NoModel(WebsocketBinding):
                stream = "x"
                fields = ["title"]

    def test_fields_or_exclude_required(self):
        with pytest.raises(ValueError, match="`fields`.*`exclude`"):

            class NoFields(WebsocketBinding):
                model = Note
                stream = "x"

    def test_model_string_resolved_and_label_set(self, bindings):
        binding = make_binding(bindings, model="testapp.Note")
        assert binding.model is Note
        assert binding.model_label == "testapp.note"


class TestOutbound:
    """C-60, C-62: saves and deletes become stream frames to the instance's groups."""

    def test_create_update_delete(self, layer, bindings):
        make_binding(bindings)
        layer.group_add("room-lobby", MEMBER)

        note = Note.objects.create(title="hello", body="text", secret="s3")
        note.title = "changed"
        note.save()
        pk = note.pk
        note.delete()

        assert frames(layer) == [
            {
                "stream": "notes",
                "payload": {
                    "action": CREATE,
                    "pk": pk,
                    "data": {"title": "hello", "body": "text", "room": "lobby"},
                    "model": "testapp.note",
                },
            },
            {
                "stream": "notes",
                "payload": {
                    "action": UPDATE,
                    "pk": pk,
                    "data": {"title": "changed", "body": "text", "room": "lobby"},
                    "model": "testapp.note",
                },
            },
            {
                "stream": "notes",
                "payload": {
                    "action": DELETE,
                    "pk": pk,
                    "data": {"title": "changed", "body": "text", "room": "lobby"},
                    "model": "testapp.note",
                },
            },
        ]

    def test_moving_between_groups_sends_delete_update_create_in_order(self, layer, bindings):
        make_binding(
            bindings,
            group_names=classmethod(lambda cls, instance: ["all", f"room-{instance.room}"]),
        )
        note = Note.objects.create(title="mover", room="lobby")
        for group in ("all", "room-lobby", "room-attic"):
            layer.group_add(group, MEMBER)
        layer.group_add("room-lobby", "client.lobby")
        layer.group_add("room-attic", "client.attic")

        note.room = "attic"
        note.save()

        assert [f["payload"]["action"] for f in frames(layer)] == [DELETE, UPDATE, CREATE]
        assert [f["payload"]["action"] for f in frames(layer, "client.lobby")] == [DELETE]
        assert [f["payload"]["action"] for f in frames(layer, "client.attic")] == [CREATE]

    def test_groups_that_do_not_hear(self, layer, bindings):
        make_binding(bindings)
        layer.group_add("room-attic", MEMBER)
        Note.objects.create(title="lobby only")
        assert frames(layer) == []

    def test_exclude_and_all_fields(self, layer, bindings):
        make_binding(bindings, fields=None, exclude=["secret", "author"])
        make_binding(bindings, fields="__all__", stream="all-notes")
        layer.group_add("room-lobby", MEMBER)
        author = Author.objects.create(name="Ann")
        Note.objects.create(title="t", secret="hidden", size=3, author=author)

        by_stream = {f["stream"]: f["payload"]["data"] for f in frames(layer)}
        assert by_stream["notes"] == {"title": "t", "body": "", "room": "lobby", "size": 3}
        assert by_stream["all-notes"] == {
            "title": "t",
            "body": "",
            "room": "lobby",
            "secret": "hidden",
            "size": 3,
            "author": author.pk,
        }

    def test_empty_serialization_sends_nothing(self, layer, bindings):
        def serialize(self, instance, action):
            return (
                {}
                if instance.title.startswith("quiet")
                else super(binding, self).serialize(instance, action)
            )

        binding = make_binding(bindings, serialize=serialize)
        layer.group_add("room-lobby", MEMBER)
        Note.objects.create(title="quiet please")
        Note.objects.create(title="loud")
        assert [f["payload"]["data"]["title"] for f in frames(layer)] == ["loud"]

    def test_signal_kwargs_reach_serialize(self, layer, bindings):
        seen = []

        def serialize(self, instance, action):
            seen.append((action, self.signal_kwargs["update_fields"], self.instance))
            return {"action": action}

        make_binding(bindings, serialize=serialize)
        layer.group_add("room-lobby", MEMBER)
        note = Note.objects.create(title="x")
        note.save(update_fields=["title"])
        assert seen == [(CREATE, None, note), (UPDATE, frozenset({"title"}), note)]
        assert post_save.has_listeners(Note)

    def test_missing_stream_is_a_clear_error(self, layer, bindings):
        make_binding(bindings, stream=None)
        with pytest.raises(ValueError, match="has no stream"):
            Note.objects.create(title="nowhere")

    def test_send_members(self, layer, bindings):
        """C-63: dotted member paths, callables called, JSON-normalised."""
        make_binding(
            bindings,
            base=WebsocketBindingWithMembers,
            fields=["title"],
            send_members=["shout", "author.name", "author.pk"],
        )
        layer.group_add("room-lobby", MEMBER)
        author = Author.objects.create(name="Ann")
        Note.objects.create(title="quiet", author=author)
        assert frames(layer)[0]["payload"]["data"] == {
            "title": "quiet",
            "shout": "QUIET",
            "author__name": "Ann",
            "author__pk": author.pk,
        }


class NotesDemultiplexer(WebsocketDemultiplexer):
    http_user = True
    consumers: dict = {}


@pytest.fixture
def inbound(layer, bindings):
    """A binding demultiplexed on stream "notes"; only user "ann" may change notes."""

    def has_permission(self, user, action, pk):
        self.seen = (user.username, action, pk)
        return user.username == "ann"

    binding = make_binding(bindings, has_permission=has_permission)
    demultiplexer = type("Demux", (NotesDemultiplexer,), {"consumers": {"notes": binding.consumer}})
    with apply_routes([route_class(demultiplexer)]):
        yield binding


def connected_client(username: str | None) -> WSClient:
    client = WSClient()
    if username is not None:
        client.force_login(User.objects.create_user(username, password="pw"))
    client.send_and_consume("websocket.connect", path="/")
    return client


def send_frame(client: WSClient, payload: dict) -> None:
    client.send_and_consume("websocket.receive", text={"stream": "notes", "payload": payload})


class TestInbound:
    """C-61, C-62: inbound frames through the demultiplexer, with permission checks."""

    def test_create_update_delete(self, inbound):
        client = connected_client("ann")

        send_frame(
            client,
            {"action": "create", "data": {"title": "new", "body": "b", "size": 7, "secret": "x"}},
        )
        note = Note.objects.get()
        assert (note.title, note.body) == ("new", "b")
        assert (note.size, note.secret) == (0, ""), "fields outside `fields` are not set"

        send_frame(
            client,
            {"action": "update", "pk": note.pk, "data": {"title": "edited", "secret": "x"}},
        )
        note.refresh_from_db()
        assert note.title == "edited"
        assert note.secret == "", "fields outside `fields` are not updated"

        send_frame(client, {"action": "delete", "pk": note.pk})
        assert not Note.objects.exists()

    def test_update_with_exclude(self, layer, bindings):
        binding = make_binding(bindings, fields=None, exclude=["secret"])
        note = Note.objects.create(title="a", secret="keep")
        with apply_routes([route("websocket.receive", binding.consumer)]):
            client = WSClient()
            client.send_and_consume(
                "websocket.receive",
                text={"action": "update", "pk": note.pk, "data": {"size": 2, "secret": "x"}},
            )
        note.refresh_from_db()
        assert (note.size, note.secret) == (2, "keep")

    def test_permission_denied_changes_nothing(self, inbound):
        note = Note.objects.create(title="mine")
        client = connected_client("bob")
        send_frame(client, {"action": "update", "pk": note.pk, "data": {"title": "bob's"}})
        send_frame(client, {"action": "delete", "pk": note.pk})
        send_frame(client, {"action": "create", "data": {"title": "bob's"}})
        assert list(Note.objects.values_list("title", flat=True)) == ["mine"]

    def test_anonymous_user_is_checked_too(self, inbound):
        seen = []
        inbound.has_permission = lambda self, user, action, pk: seen.append(user) or False
        client = connected_client(None)
        send_frame(client, {"action": "create", "data": {"title": "anon"}})
        assert not Note.objects.exists()
        assert len(seen) == 1 and seen[0].is_anonymous

    def test_connect_and_disconnect_are_ignored_by_the_binding(self, inbound):
        client = connected_client("ann")
        client.send_and_consume("websocket.disconnect", {"code": 1000})
        assert not Note.objects.exists()

    def test_unknown_action_is_refused(self, inbound):
        client = connected_client("ann")
        with pytest.raises(ValueError, match="Unknown binding action 'upsert'"):
            send_frame(client, {"action": "upsert", "data": {"title": "x"}})
        assert not Note.objects.exists()

    def test_frame_without_action_is_refused(self, inbound):
        client = connected_client("ann")
        with pytest.raises(InvalidBindingMessage, match="'action'"):
            send_frame(client, {"data": {"title": "x"}})

    def test_data_must_be_an_object(self, inbound):
        client = connected_client("ann")
        with pytest.raises(InvalidBindingMessage, match="'data'"):
            send_frame(client, {"action": "create", "data": ["title"]})

    def test_inbound_change_is_broadcast_outbound(self, inbound, layer):
        """The round trip a bound UI relies on: a client's create reaches the group."""
        client = connected_client("ann")
        layer.group_add("room-lobby", MEMBER)
        send_frame(client, {"action": "create", "data": {"title": "shared"}})
        [frame] = frames(layer)
        assert frame["payload"]["action"] == CREATE
        assert frame["payload"]["data"]["title"] == "shared"


class TestOrdering:
    """C-62 with C-45: `strict_ordering` applies enforce_ordering to inbound frames."""

    def test_strict_ordering_applies_frames_in_order(self, layer, bindings):
        binding = make_binding(bindings, strict_ordering=True, channel_session_user=False)
        note = Note.objects.create(title="v0")
        with apply_routes([route("websocket.receive", binding.consumer)]):
            client = WSClient()
            update = {"action": "update", "pk": note.pk}
            client.send(
                "websocket.receive",
                {"order": 1, "text": json.dumps({**update, "data": {"title": "v2"}})},
            )
            client.send(
                "websocket.receive",
                {"order": 0, "text": json.dumps({**update, "data": {"title": "v1"}})},
            )
            client.consume("websocket.receive")  # order 1 arrives first: set aside
            note.refresh_from_db()
            assert note.title == "v0"
            client.consume("websocket.receive")  # order 0 runs, then order 1 is requeued
            note.refresh_from_db()
            assert note.title == "v1"
            client.consume("websocket.receive")
            note.refresh_from_db()
            assert note.title == "v2"

    def test_slight_ordering_is_refused(self, layer, bindings):
        binding = make_binding(bindings, slight_ordering=True)
        with pytest.raises(ValueError, match="Slight ordering"):
            binding.get_handler()
