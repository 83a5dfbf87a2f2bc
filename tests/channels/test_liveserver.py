"""ChannelLiveServerTestCase: real Daphne + worker processes on the IPC layer (C-71).

Real HTTP (requests) and WebSocket (websocket-client) clients talk to forked
Daphne and worker processes; the test database and the channel layer are shared
with the test process.
"""

from __future__ import annotations

import os
import unittest
import uuid

import pytest
import requests
import websocket
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path

from channels import Group, route
from channels.asgi import channel_layers
from channels.test import ChannelLiveServerTestCase
from tests.asgi_ipc.helpers import remove_store

PREFIX = f"cl-{os.getpid()}-{uuid.uuid4().hex[:8]}"
TIMEOUT = 10  # seconds, for every client socket operation


def user_count(request):
    return HttpResponse(f"users={User.objects.count()}")


urlpatterns = [path("users/", user_count)]


def join_and_accept(message, **kwargs):
    Group("live").add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def shout(message, **kwargs):
    message.reply_channel.send({"text": message["text"].upper()})


channel_routing = [
    route("websocket.connect", join_and_accept),
    route("websocket.receive", shout),
]

IPC_LAYERS = {
    "default": {
        "BACKEND": "asgi_ipc.IPCChannelLayer",
        "ROUTING": "tests.channels.test_liveserver.channel_routing",
        "TEST_CONFIG": {"prefix": PREFIX},
    }
}


@pytest.fixture(scope="module", autouse=True)
def remove_ipc_store():
    yield
    remove_store(PREFIX)


@override_settings(CHANNEL_LAYERS=IPC_LAYERS, ROOT_URLCONF="tests.channels.test_liveserver")
class LiveServerTests(ChannelLiveServerTestCase):
    def test_urls(self):
        """C-71: live_server_url / live_server_ws_url name the host and Daphne's port."""
        port = self._port_storage.value
        assert port > 0
        assert self.live_server_url == f"http://localhost:{port}"
        assert self.live_server_ws_url == f"ws://localhost:{port}"

    def test_http_view_sees_the_test_database(self):
        """C-71: a Django view runs in the worker on the test database."""
        User.objects.create_user("one")
        User.objects.create_user("two")
        response = requests.get(self.live_server_url + "/users/", timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.text == "users=2"

    def test_websocket_round_trip_and_group_send_from_the_test(self):
        """C-71: WebSocket frames reach the worker; the test's layer reaches the socket."""
        ws = websocket.create_connection(self.live_server_ws_url + "/chat/", timeout=TIMEOUT)
        try:
            ws.send("hello")
            assert ws.recv() == "HELLO"
            # The connect consumer joined the group before accepting.
            Group("live").send({"text": "from the test"})
            assert ws.recv() == "from the test"
        finally:
            ws.close()

    def test_static_files_served(self):
        """C-71: serve_static routes HTTP through StaticFilesConsumer (app static files)."""
        url = self.live_server_url + "/static/channels/js/websocketbridge.js"
        response = requests.get(url, timeout=TIMEOUT)
        assert response.status_code == 200
        assert "WebSocketBridge" in response.text

    def test_unknown_url_is_404(self):
        """C-71: requests without a view get Django's 404 through the worker."""
        response = requests.get(self.live_server_url + "/nothing/", timeout=TIMEOUT)
        assert response.status_code == 404


@override_settings(CHANNEL_LAYERS=IPC_LAYERS, ROOT_URLCONF="tests.channels.test_liveserver")
class WorkerGroupLiveServerTests(ChannelLiveServerTestCase):
    worker_threads = 2

    def test_requests_served_by_a_worker_group(self):
        """C-71: worker_threads > 1 runs a WorkerGroup; HTTP and WebSocket still work."""
        User.objects.create_user("three")
        response = requests.get(self.live_server_url + "/users/", timeout=TIMEOUT)
        assert response.text == "users=1"
        ws = websocket.create_connection(self.live_server_ws_url + "/", timeout=TIMEOUT)
        try:
            ws.send("abc")
            assert ws.recv() == "ABC"
        finally:
            ws.close()


def run_case(case_class):
    """Run one test case class; return the unittest result."""
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(case_class)
    return unittest.TextTestRunner(stream=_NullStream(), verbosity=0).run(suite)


class _NullStream:
    def write(self, text):
        pass

    def flush(self):
        pass


@pytest.mark.django_db(transaction=True)
def test_children_stop_and_layer_restored_after_each_test():
    """C-71: teardown terminates and joins Daphne and the worker; the layer is restored."""
    outer = channel_layers["default"]
    seen = []

    @override_settings(CHANNEL_LAYERS=IPC_LAYERS, ROOT_URLCONF="tests.channels.test_liveserver")
    class Inner(ChannelLiveServerTestCase):
        def test_one(self):
            seen.append(list(type(self)._children))

        def test_two(self):
            seen.append(list(type(self)._children))

    result = run_case(Inner)
    assert result.wasSuccessful(), result.errors + result.failures
    assert len(seen) == 2
    first, second = seen
    assert len(first) == 2 and len(second) == 2
    assert not set(map(id, first)) & set(map(id, second))  # new processes per test
    for process in first + second:
        assert not process.is_alive()
        assert process.exitcode is not None
    assert channel_layers["default"] is outer


def assert_setup_refused(case_class, match):
    result = run_case(case_class)
    assert not result.wasSuccessful()
    errors = "".join(text for _, text in result.errors)
    assert ImproperlyConfigured.__name__ in errors
    assert match in errors


@pytest.mark.django_db(transaction=True)
def test_in_memory_layer_refused():
    """C-71: a local-only TEST_CONFIG layer cannot serve other processes."""
    outer = channel_layers["default"]

    class Inner(ChannelLiveServerTestCase):
        def test_nothing(self):
            raise AssertionError("must not run")

    assert_setup_refused(Inner, "cross-process channel layer")
    assert channel_layers["default"] is outer


@pytest.mark.django_db(transaction=True)
def test_multiple_layers_refused():
    """C-71: more than one configured layer is refused."""
    layers = dict(IPC_LAYERS, other=IPC_LAYERS["default"])

    @override_settings(CHANNEL_LAYERS=layers)
    class Inner(ChannelLiveServerTestCase):
        def test_nothing(self):
            raise AssertionError("must not run")

    assert_setup_refused(Inner, "multiple CHANNEL_LAYERS")
