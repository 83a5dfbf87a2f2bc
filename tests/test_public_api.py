"""Audit of the public names of `channels` (issue 13, point 2; channels.md; docs/differences.rst).

Every name the spec's sections give a signature, default or class attribute is checked
here, so the audit in docs/differences.rst stays true. Parameter lists are written without
``self``/``cls`` (see tests/api_audit.py for the matching rules). Daphne and the layers are
audited in tests/test_public_api_servers.py.
"""

from __future__ import annotations

import importlib
import logging
import sys

import pytest
from django.core.management import load_command_class
from django.db import close_old_connections, models
from django.dispatch import Signal
from django.test import TestCase, TransactionTestCase

from tests.api_audit import (
    Ref,
    audit_ids,
    check_bases,
    check_value,
    resolve,
    signature_mismatches,
    static_kind,
)

# (spec ID, dotted path, parameters as the spec gives them)
SIGNATURES = [
    ("C-4", "channels.apps.ChannelsConfig.ready", "()"),
    ("C-5", "channels.package_checks.check_all", "()"),
    ("C-6", "channels.hacks.monkeypatch_django", "()"),
    ("C-7", "channels.utils.name_that_thing", "(thing)"),
    ("C-10", "channels.asgi.ChannelLayerManager", "()"),
    ("C-10", "channels.asgi.ChannelLayerManager.make_backend", "(name)"),
    ("C-10", "channels.asgi.ChannelLayerManager.make_test_backend", "(name)"),
    ("C-10", "channels.asgi.ChannelLayerManager._make_backend", "(name, config)"),
    ("C-10", "channels.asgi.ChannelLayerManager.set", "(_alias, _wrapper)"),
    ("C-12", "channels.asgi.ChannelLayerWrapper", "(channel_layer, alias, routing)"),
    ("C-12", "channels.asgi.ChannelLayerWrapper.local_only", "()"),
    ("C-13", "channels.asgi.get_channel_layer", "(alias='default')"),
    ("C-14", "channels.channel.Channel", "(name, alias='default', channel_layer=None)"),
    ("C-15", "channels.channel.Channel.send", "(content, immediately=False)"),
    ("C-16", "channels.channel.Group", "(name, alias='default', channel_layer=None)"),
    ("C-16", "channels.channel.Group.add", "(channel)"),
    ("C-16", "channels.channel.Group.discard", "(channel)"),
    ("C-16", "channels.channel.Group.send", "(content, immediately=False)"),
    ("C-17", "channels.message.Message", "(content, channel_name, channel_layer)"),
    ("C-17", "channels.message.Message.get", "(key, default=None)"),
    ("C-17", "channels.message.Message.keys", "()"),
    ("C-17", "channels.message.Message.values", "()"),
    ("C-17", "channels.message.Message.items", "()"),
    ("C-18", "channels.message.Message.copy", "()"),
    ("C-19", "channels.message.PendingMessageStore.prepare", "(**kwargs)"),
    ("C-19", "channels.message.PendingMessageStore.append", "(sender, message)"),
    ("C-19", "channels.message.PendingMessageStore.send_and_flush", "(**kwargs)"),
    ("C-20", "channels.routing.Router", "(routing)"),
    ("C-20", "channels.routing.Router.match", "(message)"),
    ("C-20", "channels.routing.Router.add_route", "(route)"),
    ("C-21", "channels.routing.Router.check_default", "(http_consumer=None)"),
    ("C-22", "channels.routing.Router.resolve_routing", "(routing)"),
    ("C-22", "channels.routing.Router.normalise_re_arg", "(value)"),
    ("C-23", "channels.routing.Route", "(channels, consumer, **filters)"),
    ("C-23", "channels.routing.Route.match", "(message)"),
    ("C-23", "channels.routing.Route.channel_names", "()"),
    ("C-24", "channels.routing.RouteClass", "(consumer, **filters)"),
    ("C-25", "channels.routing.Include", "(routing, **prefixes)"),
    ("C-25", "channels.routing.Include.match", "(message)"),
    ("C-25", "channels.routing.Include.channel_names", "()"),
    ("C-26", "channels.routing.null_consumer", "(*args, **kwargs)"),
    ("C-26", "channels.routing.connect_consumer", "(message, *args, **kwargs)"),
    (
        "C-28",
        "channels.worker.Worker",
        "(channel_layer, callback=None, message_retries=10, signal_handlers=True, "
        "only_channels=None, exclude_channels=None)",
    ),
    ("C-29", "channels.worker.Worker.apply_channel_filters", "(channels)"),
    ("C-30", "channels.worker.Worker.ready", "()"),
    ("C-31", "channels.worker.Worker.run", "()"),
    ("C-33", "channels.worker.WorkerGroup", "(*args, **kwargs)"),
    ("C-34", "channels.handler.AsgiRequest", "(message)"),
    ("C-36", "channels.handler.AsgiHandler", "()"),
    ("C-36", "channels.handler.AsgiHandler.__call__", "(message)"),
    ("C-38", "channels.handler.AsgiHandler.encode_response", "(response)"),
    ("C-39", "channels.handler.AsgiHandler.chunk_bytes", "(data)"),
    ("C-40", "channels.handler.ViewConsumer", "()"),
    ("C-40", "channels.handler.ViewConsumer.__call__", "(message)"),
    ("C-41", "channels.staticfiles.StaticFilesHandler", "()"),
    ("C-42", "channels.staticfiles.StaticFilesConsumer", "()"),
    ("C-43", "channels.sessions.session_for_reply_channel", "(reply_channel)"),
    ("C-44", "channels.sessions.channel_session", "(func)"),
    ("C-45", "channels.sessions.enforce_ordering", "(func=None, slight=False)"),
    ("C-46", "channels.sessions.http_session", "(func)"),
    ("C-47", "channels.sessions.channel_and_http_session", "(func)"),
    ("C-48", "channels.auth.transfer_user", "(from_session, to_session)"),
    ("C-49", "channels.auth.http_session_user", "(func)"),
    ("C-50", "channels.auth.channel_session_user", "(func)"),
    ("C-51", "channels.auth.channel_session_user_from_http", "(func)"),
    ("C-52", "channels.auth.channel_and_http_session_user_from_http", "(func)"),
    ("C-53", "channels.generic.BaseConsumer", "(message, **kwargs)"),
    ("C-53", "channels.generic.BaseConsumer.channel_names", "()"),
    ("C-53", "channels.generic.BaseConsumer.get_handler", "(message, **kwargs)"),
    ("C-53", "channels.generic.BaseConsumer.dispatch", "(message, **kwargs)"),
    ("C-53", "channels.generic.BaseConsumer.as_route", "(attrs=None, **filters)"),
    ("C-54", "channels.generic.websockets.WebsocketConsumer.connection_groups", "(**kwargs)"),
    ("C-54", "channels.generic.websockets.WebsocketConsumer.raw_connect", "(message, **kwargs)"),
    ("C-54", "channels.generic.websockets.WebsocketConsumer.connect", "(message, **kwargs)"),
    ("C-54", "channels.generic.websockets.WebsocketConsumer.raw_receive", "(message, **kwargs)"),
    (
        "C-54",
        "channels.generic.websockets.WebsocketConsumer.receive",
        "(text=None, bytes=None, **kwargs)",
    ),
    (
        "C-54",
        "channels.generic.websockets.WebsocketConsumer.send",
        "(text=None, bytes=None, close=False)",
    ),
    (
        "C-54",
        "channels.generic.websockets.WebsocketConsumer.group_send",
        "(name, text=None, bytes=None, close=False)",
    ),
    ("C-54", "channels.generic.websockets.WebsocketConsumer.close", "(status=True)"),
    (
        "C-54",
        "channels.generic.websockets.WebsocketConsumer.raw_disconnect",
        "(message, **kwargs)",
    ),
    ("C-54", "channels.generic.websockets.WebsocketConsumer.disconnect", "(message, **kwargs)"),
    (
        "C-55",
        "channels.generic.websockets.JsonWebsocketConsumer.raw_receive",
        "(message, **kwargs)",
    ),
    ("C-55", "channels.generic.websockets.JsonWebsocketConsumer.receive", "(content, **kwargs)"),
    ("C-55", "channels.generic.websockets.JsonWebsocketConsumer.send", "(content, close=False)"),
    (
        "C-55",
        "channels.generic.websockets.JsonWebsocketConsumer.group_send",
        "(name, content, close=False)",
    ),
    ("C-55", "channels.generic.websockets.JsonWebsocketConsumer.decode_json", "(text)"),
    ("C-55", "channels.generic.websockets.JsonWebsocketConsumer.encode_json", "(content)"),
    ("C-56", "channels.generic.websockets.WebsocketMultiplexer", "(stream, reply_channel)"),
    ("C-56", "channels.generic.websockets.WebsocketMultiplexer.send", "(payload)"),
    ("C-56", "channels.generic.websockets.WebsocketMultiplexer.encode", "(stream, payload)"),
    (
        "C-56",
        "channels.generic.websockets.WebsocketMultiplexer.group_send",
        "(name, stream, payload, close=False)",
    ),
    (
        "C-57",
        "channels.generic.websockets.WebsocketDemultiplexer.receive",
        "(content, **kwargs)",
    ),
    (
        "C-57",
        "channels.generic.websockets.WebsocketDemultiplexer.connect",
        "(message, **kwargs)",
    ),
    (
        "C-57",
        "channels.generic.websockets.WebsocketDemultiplexer.disconnect",
        "(message, **kwargs)",
    ),
    ("C-57", "channels.generic.websockets.WebsocketDemultiplexer.encode", "(stream, payload)"),
    ("C-58", "channels.binding.base.BindingMetaclass.register_all", "()"),
    ("C-59", "channels.binding.base.Binding.register", "()"),
    ("C-59", "channels.binding.base.Binding.get_registered_models", "()"),
    (
        "C-60",
        "channels.binding.base.Binding.send_messages",
        "(instance, _group_names, action, **kwargs)",
    ),
    ("C-60", "channels.binding.base.Binding.serialize", "(instance, action)"),
    ("C-61", "channels.binding.base.Binding.consumer", "(message, **kwargs)"),
    ("C-61", "channels.binding.base.Binding.get_handler", "()"),
    ("C-61", "channels.binding.base.Binding.deserialize", "(message)"),
    ("C-61", "channels.binding.base.Binding.has_permission", "(user, action, pk)"),
    ("C-61", "channels.binding.base.Binding.create", "(data)"),
    ("C-61", "channels.binding.base.Binding.update", "(pk, data)"),
    ("C-61", "channels.binding.base.Binding.delete", "(pk)"),
    ("C-62", "channels.binding.websockets.WebsocketBinding.encode", "(stream, payload)"),
    ("C-62", "channels.binding.websockets.WebsocketBinding.serialize", "(instance, action)"),
    ("C-62", "channels.binding.websockets.WebsocketBinding.serialize_data", "(instance)"),
    ("C-62", "channels.binding.websockets.WebsocketBinding.deserialize", "(message)"),
    ("C-62", "channels.binding.websockets.WebsocketBinding.create", "(data)"),
    ("C-62", "channels.binding.websockets.WebsocketBinding.update", "(pk, data)"),
    ("C-64", "channels.security.websockets.BaseOriginValidator", "(func)"),
    (
        "C-64",
        "channels.security.websockets.BaseOriginValidator.__call__",
        "(message, *args, **kwargs)",
    ),
    ("C-64", "channels.security.websockets.BaseOriginValidator.get_header", "(message, name)"),
    ("C-64", "channels.security.websockets.BaseOriginValidator.get_origin", "(message)"),
    (
        "C-64",
        "channels.security.websockets.BaseOriginValidator.validate_origin",
        "(message, origin)",
    ),
    ("C-65", "channels.security.websockets.AllowedHostsOnlyOriginValidator", "(func)"),
    ("C-89", "channels.security.websockets.allowed_origins", "(*patterns)"),
    ("C-66", "channels.exceptions.ChannelSocketException.run", "(message)"),
    ("C-66", "channels.exceptions.WebsocketCloseException", "(code=None)"),
    (
        "C-67",
        "channels.test.base.ChannelTestCaseMixin.get_next_message",
        "(channel, alias='default', require=False)",
    ),
    ("C-68", "channels.test.Client", "(alias='default')"),
    ("C-68", "channels.test.Client.get_next_message", "(channel)"),
    ("C-68", "channels.test.Client.get_consumer_by_channel", "(channel)"),
    ("C-68", "channels.test.Client.send", "(to, content={})"),
    ("C-68", "channels.test.Client.consume", "(channel, fail_on_none=True)"),
    ("C-68", "channels.test.Client.send_and_consume", "(channel, content={}, fail_on_none=True)"),
    ("C-68", "channels.test.Client.receive", "()"),
    ("C-68", "channels.test.Client.join_group", "(_name)"),
    ("C-69", "channels.test.WSClient", "(ordered=False, **client_kwargs)"),
    ("C-69", "channels.test.WSClient.set_cookie", "(_key, _value)"),
    ("C-69", "channels.test.WSClient.set_header", "(_key, _value)"),
    ("C-69", "channels.test.WSClient.get_cookies", "()"),
    ("C-69", "channels.test.WSClient.send", "(to, content={}, text=None, path='/')"),
    ("C-69", "channels.test.WSClient.receive", "(json=True)"),
    # C-69 _get_content: fixed on the WSClient branch (issue 13, covered elsewhere).
    ("C-69", "channels.test.WSClient._get_content", "(content={}, text=None, path='/')"),
    ("C-69", "channels.test.WSClient.consume", "(channel, fail_on_none=True, check_accept=True)"),
    (
        "C-69",
        "channels.test.WSClient.send_and_consume",
        "(channel, content={}, text=None, path='/', fail_on_none=True, check_accept=True)",
    ),
    ("C-69", "channels.test.WSClient.login", "(**credentials)"),
    ("C-69", "channels.test.WSClient.force_login", "(user, backend=None)"),
    # C-70 aliases default: the project has None; reported to the channels.test owner.
    ("C-70", "channels.test.apply_routes", "(routes, aliases=['default'])"),
    (
        "C-73",
        "channels.delay.models.DelayedMessage.send",
        "(channel_layer=None, requeue_delay=1000)",
    ),
    ("C-73", "channels.delay.models.DelayedMessageQuerySet.is_due", "()"),
    (
        "C-74",
        "channels.delay.worker.Worker",
        "(channel_layer, signal_handlers=True, database_sleep_duration=1)",
    ),
    ("C-76", "channels.log.setup_logger", "(name, verbosity=1)"),
    (
        "C-80",
        "channels.management.commands.runserver.Command.log_action",
        "(protocol, action, details)",
    ),
    ("C-81", "channels.management.commands.runserver.WorkerThread", "(channel_layer, logger)"),
]

# Names the spec calls classmethods (1.x code calls them on the class).
CLASSMETHODS = [
    ("C-22", "channels.routing.Router.resolve_routing"),
    ("C-38", "channels.handler.AsgiHandler.encode_response"),
    ("C-39", "channels.handler.AsgiHandler.chunk_bytes"),
    ("C-53", "channels.generic.BaseConsumer.channel_names"),
    ("C-53", "channels.generic.BaseConsumer.as_route"),
    ("C-54", "channels.generic.websockets.WebsocketConsumer.group_send"),
    ("C-55", "channels.generic.websockets.JsonWebsocketConsumer.group_send"),
    ("C-55", "channels.generic.websockets.JsonWebsocketConsumer.decode_json"),
    ("C-55", "channels.generic.websockets.JsonWebsocketConsumer.encode_json"),
    ("C-56", "channels.generic.websockets.WebsocketMultiplexer.encode"),
    ("C-56", "channels.generic.websockets.WebsocketMultiplexer.group_send"),
    ("C-58", "channels.binding.base.BindingMetaclass.register_all"),
    ("C-61", "channels.binding.base.Binding.consumer"),
    ("C-67", "channels.test.base.ChannelTestCaseMixin._pre_setup"),
]

_ws = "channels.generic.websockets."
# (spec ID, dotted path, value): compared with `is` for classes, else with ==.
VALUES = [
    ("C-3", "channels.__version__", "1.1.8"),
    ("C-3", "channels.DEFAULT_CHANNEL_LAYER", "default"),
    ("C-3", "channels.Channel", Ref("channels.channel.Channel")),
    ("C-3", "channels.Group", Ref("channels.channel.Group")),
    ("C-3", "channels.route", Ref("channels.routing.Route")),
    ("C-3", "channels.route_class", Ref("channels.routing.RouteClass")),
    ("C-3", "channels.include", Ref("channels.routing.Include")),
    ("C-4", "channels.apps.ChannelsConfig.name", "channels"),
    ("C-4", "channels.apps.ChannelsConfig.verbose_name", "Channels"),
    ("C-8", "channels.test.HttpClient", Ref("channels.test.WSClient")),
    ("C-19", "channels.message.PendingMessageStore.retry_time", 2),
    ("C-19", "channels.message.PendingMessageStore.retry_interval", 0.2),
    ("C-23", "channels.routing.route", Ref("channels.routing.Route")),
    ("C-24", "channels.routing.route_class", Ref("channels.routing.RouteClass")),
    ("C-25", "channels.routing.include", Ref("channels.routing.Include")),
    (
        "C-34",
        "channels.handler.AsgiRequest.ResponseLater",
        Ref("channels.exceptions.ResponseLater"),
    ),
    ("C-35", "channels.handler.AsgiRequest.body_receive_timeout", 60),
    ("C-36", "channels.handler.AsgiHandler.request_class", Ref("channels.handler.AsgiRequest")),
    ("C-36", "channels.handler.AsgiHandler.chunk_size", 512 * 1024),
    ("C-40", "channels.handler.ViewConsumer.handler_class", Ref("channels.handler.AsgiHandler")),
    (
        "C-42",
        "channels.staticfiles.StaticFilesConsumer.handler_class",
        Ref("channels.staticfiles.StaticFilesHandler"),
    ),
    ("C-53", "channels.generic.BaseConsumer.method_mapping", {}),
    ("C-53", "channels.generic.BaseConsumer.channel_session", False),
    ("C-53", "channels.generic.BaseConsumer.channel_session_user", False),
    (
        "C-54",
        _ws + "WebsocketConsumer.method_mapping",
        {
            "websocket.connect": "raw_connect",
            "websocket.receive": "raw_receive",
            "websocket.disconnect": "raw_disconnect",
        },
    ),
    ("C-54", _ws + "WebsocketConsumer.http_user", False),
    ("C-54", _ws + "WebsocketConsumer.http_user_and_session", False),
    ("C-54", _ws + "WebsocketConsumer.strict_ordering", False),
    ("C-54", _ws + "WebsocketConsumer.groups", None),
    ("C-57", _ws + "WebsocketDemultiplexer.consumers", {}),
    ("C-57", _ws + "WebsocketDemultiplexer.multiplexer_class", Ref(_ws + "WebsocketMultiplexer")),
    ("C-59", "channels.binding.base.CREATE", "create"),
    ("C-59", "channels.binding.base.UPDATE", "update"),
    ("C-59", "channels.binding.base.DELETE", "delete"),
    ("C-59", "channels.binding.base.Binding.model", None),
    ("C-59", "channels.binding.base.Binding.fields", None),
    ("C-59", "channels.binding.base.Binding.exclude", None),
    ("C-59", "channels.binding.base.Binding.channel_session_user", True),
    ("C-59", "channels.binding.base.Binding.channel_session", False),
    ("C-59", "channels.binding.base.Binding.signal_kwargs", None),
    ("C-62", "channels.binding.websockets.WebsocketBinding.stream", None),
    ("C-62", "channels.binding.websockets.WebsocketBinding.strict_ordering", False),
    ("C-62", "channels.binding.websockets.WebsocketBinding.slight_ordering", False),
    ("C-63", "channels.binding.websockets.WebsocketBindingWithMembers.send_members", []),
    (
        "C-65",
        "channels.security.websockets.allowed_hosts_only",
        Ref("channels.security.websockets.AllowedHostsOnlyOriginValidator"),
    ),
    ("C-67", "channels.test.base.ChannelTestCaseMixin.test_channel_aliases", ["default"]),
    ("C-71", "channels.test.ChannelLiveServerTestCase.host", "localhost"),
    ("C-71", "channels.test.ChannelLiveServerTestCase.worker_threads", 1),
    ("C-71", "channels.test.ChannelLiveServerTestCase.serve_static", True),
    ("C-72", "channels.delay.apps.DelayConfig.label", "channels_delay"),
    ("C-72", "channels.delay.apps.DelayConfig.verbose_name", "Channels Delay"),
    ("C-72", "channels.delay.apps.DelayConfig.default_auto_field", "django.db.models.AutoField"),
    # C-79 server_cls: fixed on the runserver branch (issue 13, covered elsewhere).
    (
        "C-79",
        "channels.management.commands.runserver.Command.server_cls",
        Ref("daphne.server.Server"),
    ),
]

# (spec ID, dotted path of a class, dotted paths of the bases it must have)
SUBCLASSES = (
    [
        ("C-9", "channels.asgi.InvalidChannelLayerError", ["builtins.ValueError"]),
        ("C-34", "channels.handler.AsgiRequest", ["django.http.HttpRequest"]),
        ("C-36", "channels.handler.AsgiHandler", ["django.core.handlers.base.BaseHandler"]),
        ("C-41", "channels.staticfiles.StaticFilesHandler", ["channels.handler.AsgiHandler"]),
        ("C-42", "channels.staticfiles.StaticFilesConsumer", ["channels.handler.ViewConsumer"]),
        ("C-54", _ws + "WebsocketConsumer", ["channels.generic.BaseConsumer"]),
        ("C-55", _ws + "JsonWebsocketConsumer", [_ws + "WebsocketConsumer"]),
        ("C-57", _ws + "WebsocketDemultiplexer", [_ws + "JsonWebsocketConsumer"]),
        ("C-62", "channels.binding.websockets.WebsocketBinding", ["channels.binding.Binding"]),
        (
            "C-63",
            "channels.binding.websockets.WebsocketBindingWithMembers",
            ["channels.binding.websockets.WebsocketBinding"],
        ),
        (
            "C-65",
            "channels.security.websockets.AllowedHostsOnlyOriginValidator",
            ["channels.security.websockets.BaseOriginValidator"],
        ),
        (
            "C-67",
            "channels.test.ChannelTestCase",
            ["channels.test.base.ChannelTestCaseMixin", "django.test.TestCase"],
        ),
        (
            "C-67",
            "channels.test.TransactionChannelTestCase",
            ["channels.test.base.ChannelTestCaseMixin", "django.test.TransactionTestCase"],
        ),
        ("C-71", "channels.test.ChannelLiveServerTestCase", ["django.test.TransactionTestCase"]),
        ("C-81", "channels.management.commands.runserver.WorkerThread", ["threading.Thread"]),
    ]
    + [
        ("C-66", f"channels.exceptions.{name}", ["builtins.Exception"])
        for name in (
            "ConsumeLater",
            "ResponseLater",
            "RequestTimeout",
            "RequestAborted",
            "DenyConnection",
            "ChannelSocketException",
            "SendNotAvailableOnDemultiplexer",
        )
    ]
    + [
        (
            "C-66",
            "channels.exceptions.WebsocketCloseException",
            ["channels.exceptions.ChannelSocketException"],
        )
    ]
)


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
    """Issue 13: module constants, aliases and class attributes 1.x code reads or sets."""
    check_value(path, value)


@pytest.mark.parametrize(("spec_id", "path", "bases"), SUBCLASSES, ids=audit_ids(SUBCLASSES))
def test_base_classes(spec_id, path, bases):
    """Issue 13: exception types and class hierarchies 1.x code catches or subclasses."""
    check_bases(path, bases)


def test_channel_layers_singleton():
    """C-11: one module-level ChannelLayerManager, re-exported by the package (C-3)."""
    import channels
    from channels.asgi import ChannelLayerManager, channel_layers

    assert isinstance(channel_layers, ChannelLayerManager)
    assert channels.channel_layers is channel_layers


def test_pending_message_store_singleton():
    """C-19: `pending_message_store` is the module's PendingMessageStore."""
    from channels.message import PendingMessageStore, pending_message_store

    assert isinstance(pending_message_store, PendingMessageStore)


def test_signals():
    """C-27: four Signal objects; close_old_connections listens to consumer_finished."""
    from channels import signals

    for name in ("consumer_started", "consumer_finished", "worker_ready", "worker_process_ready"):
        assert isinstance(getattr(signals, name), Signal), name
    assert any(
        receiver is close_old_connections
        for receiver in signals.consumer_finished._live_receivers(None)[0]
    )


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("channels.tests", ["ChannelTestCase", "Client", "WSClient", "HttpClient"]),
        ("channels.test.http", ["HttpClient"]),
    ],
)
def test_deprecated_test_modules_warn(module, names):
    """C-8: channels.tests and channels.test.http still work and say they are deprecated."""
    sys.modules.pop(module, None)
    with pytest.warns(DeprecationWarning):
        imported = importlib.import_module(module)
    for name in names:
        assert getattr(imported, name) is getattr(importlib.import_module("channels.test"), name)


def test_worker_attributes():
    """C-28: a Worker keeps its arguments as attributes, plus termed and in_job."""
    from channels.asgi import ChannelLayerWrapper
    from channels.layers.inmemory import ChannelLayer
    from channels.worker import Worker

    wrapper = ChannelLayerWrapper(ChannelLayer(), "default", [])
    worker = Worker(wrapper, signal_handlers=False, only_channels=["a*"])
    assert worker.channel_layer is wrapper
    assert (worker.callback, worker.message_retries, worker.signal_handlers) == (None, 10, False)
    assert (worker.only_channels, worker.exclude_channels) == (["a*"], None)
    assert (worker.termed, worker.in_job) == (False, False)


def test_wrapper_attributes():
    """C-12: the wrapper keeps layer, alias, routing and a Router; the rest is delegated."""
    from channels.asgi import ChannelLayerWrapper
    from channels.layers.inmemory import ChannelLayer
    from channels.routing import Router

    layer = ChannelLayer()
    wrapper = ChannelLayerWrapper(channel_layer=layer, alias="other", routing=[])
    assert (wrapper.channel_layer, wrapper.alias, wrapper.routing) == (layer, "other", [])
    assert isinstance(wrapper.router, Router)
    assert wrapper.ChannelFull is layer.ChannelFull
    assert wrapper.extensions == layer.extensions
    assert wrapper.local_only() is True
    assert str(wrapper) == "other (channels.layers.inmemory.ChannelLayer)"


def test_log_handler_is_looked_up_at_call_time(monkeypatch):
    """C-76: tests replace channels.log.handler; setup_logger uses the replacement."""
    from channels import log

    replacement = logging.StreamHandler()
    monkeypatch.setattr(log, "handler", replacement)
    names = ["audit.c76", "daphne.ws_protocol", "daphne.http_protocol", "daphne.server"]
    saved = {name: logging.getLogger(name).handlers[:] for name in names}
    try:
        logger = log.setup_logger("audit.c76", verbosity=2)
        assert replacement in logger.handlers
        assert logger.level == logging.DEBUG and logger.propagate is False
        for name in names[1:]:
            assert replacement in logging.getLogger(name).handlers, name
    finally:
        for name, handlers in saved.items():
            logging.getLogger(name).handlers[:] = handlers


def _command_defaults(app: str, name: str, argv: list[str]) -> dict:
    command = load_command_class(app, name)
    parser = command.create_parser("manage.py", name)
    return vars(parser.parse_args(argv))


def test_runworker_options():
    """C-77: runworker's options and defaults."""
    options = _command_defaults("channels", "runworker", [])
    assert options["layer"] == "default"
    assert options["only_channels"] is None and options["exclude_channels"] is None
    assert options["threads"] == 1
    repeated = _command_defaults(
        "channels", "runworker", ["--only-channels", "a*", "--only-channels", "b*"]
    )
    assert repeated["only_channels"] == ["a*", "b*"]


def test_runserver_options():
    """C-78: runserver keeps Django's options and adds the Channels ones (dests, defaults)."""
    options = _command_defaults("channels", "runserver", [])
    assert options["run_worker"] is True and options["use_asgi"] is True
    assert options["http_timeout"] == 60
    assert options["websocket_handshake_timeout"] == 5
    for dest in ("addrport", "use_ipv6", "use_threading", "use_reloader", "skip_checks"):
        assert dest in options, dest
    off = _command_defaults("channels", "runserver", ["--noworker", "--noasgi"])
    assert off["run_worker"] is False and off["use_asgi"] is False


def test_staticfiles_runserver_is_channels_runserver():
    """C-6: staticfiles' runserver (with --nostatic/--insecure) runs the Channels server."""
    from django.contrib.staticfiles.management.commands import runserver as static_runserver

    from channels.management.commands import runserver

    assert static_runserver.Command.__bases__ == (runserver.Command,)
    options = _command_defaults("django.contrib.staticfiles", "runserver", ["--nostatic"])
    assert options["use_static_handler"] is False and options["run_worker"] is True


def test_rundelay_options():
    """C-75: rundelay's --layer and --sleep defaults."""
    options = _command_defaults("channels.delay", "rundelay", [])
    assert options["layer"] == "default"
    assert options["sleep"] == 1.0


def test_delayed_message_fields():
    """C-73: DelayedMessage's fields, as 1.x migrations and queries use them."""
    from channels.delay.models import DelayedMessage, DelayedMessageQuerySet

    due_date = DelayedMessage._meta.get_field("due_date")
    channel_name = DelayedMessage._meta.get_field("channel_name")
    content = DelayedMessage._meta.get_field("content")
    assert isinstance(due_date, models.DateTimeField) and due_date.db_index
    assert isinstance(channel_name, models.CharField) and channel_name.max_length == 512
    assert isinstance(content, models.TextField)
    assert isinstance(DelayedMessage.objects.all(), DelayedMessageQuerySet)
    assert isinstance(DelayedMessage.__dict__["delay"], property)


def test_test_case_classes_are_usable_bases():
    """C-67: the test-case classes are the Django classes 1.x suites subclass."""
    from channels.test import ChannelTestCase, TransactionChannelTestCase

    assert issubclass(ChannelTestCase, TestCase)
    assert issubclass(TransactionChannelTestCase, TransactionTestCase)
    assert callable(ChannelTestCase.get_next_message)


def _sample(channel, message, block=False, *, extra=None):
    """A callable for the self-test below."""


class _Sample:
    def method(self, content, immediately=False):
        """A method for the self-test below."""


@pytest.mark.parametrize(
    ("path", "spec", "problem"),
    [
        ("tests.test_public_api._sample", "(channel, message, block=False)", None),
        ("tests.test_public_api._sample", "(_anything, message)", None),
        ("tests.test_public_api._sample", "(channel, message, block=True)", "default"),
        ("tests.test_public_api._sample", "(name, message)", "is called 'name'"),
        ("tests.test_public_api._sample", "(channel)", "extra required parameter 'message'"),
        ("tests.test_public_api._sample", "(a, b, c, d, e)", "fewer parameters"),
        ("tests.test_public_api._sample", "(channel, message, *args)", "kind"),
        ("tests.test_public_api._Sample.method", "(content, immediately=False)", None),
    ],
)
def test_audit_helper_catches_mismatches(path, spec, problem):
    """Issue 13: the audit's signature check reports what 1.x callers would trip over."""
    problems = signature_mismatches(path, spec)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in line for line in problems), problems


def test_differences_page_lists_every_audited_name():
    """Issue 13: docs/differences.rst lists every name this audit checks."""
    from pathlib import Path

    from tests import test_public_api_servers as servers

    page = (Path(__file__).resolve().parent.parent / "docs" / "differences.rst").read_text()
    tables = SIGNATURES + VALUES + servers.SIGNATURES + servers.VALUES
    missing = [path for _, path, _ in tables if f"``{path.rsplit('.', 1)[1]}" not in page]
    assert missing == []


class _CountedWorker(resolve("channels.worker.Worker")):
    """A Worker whose `termed` allows a fixed number of loops, the way 1.x tests drive one."""

    def _get_termed(self):
        if not self._loops:
            return True
        self._loops -= 1
        return False

    def _set_termed(self, value):
        self._loops = value

    termed = property(_get_termed, _set_termed)


class WorkerDrivenLikeOneX(resolve("channels.test.ChannelTestCase")):
    """C-28, C-31, C-32: 1.x tests replace `termed` with a counting property and the
    wrapper's `send` with a Mock, then run the worker in the test's thread."""

    def _run(self, consumer, loops):
        from unittest import mock

        from channels import Channel, route
        from channels.asgi import channel_layers

        Channel("audit").send({"test": "test"}, immediately=True)
        wrapper = channel_layers["default"]
        wrapper.router.add_route(route("audit", consumer))
        wrapper.send = mock.Mock(side_effect=wrapper.channel_layer.send)
        worker = _CountedWorker(wrapper, signal_handlers=False)
        worker.termed = loops
        worker.run()
        return wrapper.send

    def test_normal_run(self):
        from unittest import mock

        consumer = mock.Mock()
        send = self._run(consumer, loops=2)
        assert consumer.call_count == 1
        assert send.call_count == 0

    def test_consume_later_is_sent_again_through_the_wrapper(self):
        from channels.exceptions import ConsumeLater

        calls = []

        def consumer(message, **kwargs):
            calls.append(message.content)
            if len(calls) == 1:
                raise ConsumeLater()

        send = self._run(consumer, loops=2)
        assert len(calls) == 2
        assert send.call_count == 1

    def test_worker_group_keeps_its_sub_workers(self):
        from channels.asgi import channel_layers
        from channels.worker import WorkerGroup

        group = WorkerGroup(channel_layers["default"], n_threads=4, signal_handlers=False)
        assert len(group.workers) == 3
        assert not any(worker.signal_handlers for worker in group.workers)


def test_worker_filters_without_a_layer():
    """C-29: 1.x tests build `Worker(None, only_channels=..., exclude_channels=...)` just to
    call apply_channel_filters."""
    from channels.worker import Worker

    worker = Worker(None, only_channels=["yes.*", "maybe.*"], exclude_channels=["maybe.no.*"])
    assert worker.apply_channel_filters(["yes.1", "no.1", "maybe.a", "maybe.no.b"]) == [
        "yes.1",
        "maybe.a",
    ]


def test_channel_and_group_instances_can_be_patched():
    """C-14, C-16: like 1.x's plain objects, a Channel or Group takes instance attributes, so
    tests can patch one instance's `send`."""
    from unittest import mock

    from channels import Channel, Group
    from channels.layers.inmemory import ChannelLayer

    layer = ChannelLayer()
    channel, group = Channel("a", channel_layer=layer), Group("g", channel_layer=layer)
    with mock.patch.object(channel, "send") as send, mock.patch.object(group, "send") as shout:
        channel.send({"x": 1})
        group.send({"x": 2})
    send.assert_called_once_with({"x": 1})
    shout.assert_called_once_with({"x": 2})
    assert layer.receive(["a"]) == (None, None)
    channel.note = "kept"
    assert channel.note == "kept"


def test_routing_objects_expose_their_parts():
    """C-20, C-21, C-23, C-25: 1.x tests read `router.root.routing[i].consumer` (runworker's
    test finds the StaticFilesConsumer that way) and a route's channels and filters."""
    import re

    from channels.routing import Include, Router, null_consumer, route
    from channels.staticfiles import StaticFilesConsumer

    router = Router([])
    router.check_default(http_consumer=StaticFilesConsumer())
    assert isinstance(router.root, Include)
    assert isinstance(router.root.routing[0].consumer, StaticFilesConsumer)
    assert router.root.routing[0].channel_names() == {"http.request"}
    chat = route("websocket.connect", null_consumer, path=r"^/chat/$")
    assert chat.consumer is null_consumer and set(chat.channels) == {"websocket.connect"}
    assert isinstance(chat.filters["path"], re.Pattern)
    assert isinstance(Include([chat], path=r"^/x").prefixes["path"], re.Pattern)
