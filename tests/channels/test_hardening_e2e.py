"""Issue 15 items 5, 8, 9 against the real stack: daphne + runworker on a private Redis.

Real HTTP (requests, or a raw socket for bytes requests cannot send) and WebSocket
(websocket-client) clients; the worker runs tests/channels/hardening_settings.py:
per-user socket groups on, a logout view whose ``user_logged_out`` closes the user's
sockets.
"""

from __future__ import annotations

import json

import pytest
import requests
import websocket

from asgi_redis import RedisChannelLayer
from support.redis_harness import RedisServer, redis_server_path
from tests.channels import e2e

pytestmark = [pytest.mark.slow]

TIMEOUT = 15  # seconds, for every client call


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed")
    db = tmp_path_factory.mktemp("hardening") / "db.sqlite3"
    with RedisServer() as redis:
        env = e2e.e2e_env(
            db, redis.url, CHANNELS_E2E_ROUTING="tests.channels.hardening_routing.channel_routing"
        )
        env["DJANGO_SETTINGS_MODULE"] = "tests.channels.hardening_settings"
        e2e.prepare_database(env)
        done = e2e.django_admin(
            env,
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            "User.objects.create_user('bob', password='secret')",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with e2e.daphne_and_worker(env) as running:
            running.layer = lambda: RedisChannelLayer(hosts=[redis.url])
            yield running


def login(stack, username: str) -> requests.Session:
    session = requests.Session()
    response = session.post(
        f"{stack.url}/login/", data={"username": username, "password": "secret"}, timeout=TIMEOUT
    )
    assert response.text == f"logged in as {username}"
    return session


def open_socket(stack, session: requests.Session, username: str) -> websocket.WebSocket:
    cookie = f"sessionid={session.cookies['sessionid']}"
    ws = websocket.create_connection(f"{stack.ws_url}/auth/", cookie=cookie, timeout=TIMEOUT)
    assert ws.recv() == f"hello {username}"
    return ws


def test_logout_closes_the_users_open_sockets(stack):
    """Issue 15 item 9: logging out closes that user's open WebSockets, no one else's."""
    alice, bob = login(stack, "alice"), login(stack, "bob")
    alice_sockets = [open_socket(stack, alice, "alice") for _ in range(2)]
    bob_socket = open_socket(stack, bob, "bob")
    try:
        assert alice.post(f"{stack.url}/logout/", timeout=TIMEOUT).text == "logged out"
        for ws in alice_sockets:
            opcode, _ = ws.recv_data(control_frame=True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE
        bob_socket.send("still here")
        assert bob_socket.recv() == "bob said still here"
    finally:
        for ws in [*alice_sockets, bob_socket]:
            ws.close()
            ws.shutdown()  # close() leaves the socket open when the server closed first
        alice.close()
        bob.close()


def test_body_over_the_data_limit_is_400(stack):
    """Issue 15 item 5: a 5 MiB raw body over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) → 400,
    as Django; the worker serves the next request normally."""
    response = requests.post(
        f"{stack.url}/echo/",
        data=b"x" * (5 * 1024 * 1024),
        headers={"Content-Type": "application/octet-stream"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert requests.get(f"{stack.url}/hello/", timeout=TIMEOUT).text == "Hello World!"


def test_large_file_upload_is_accepted(stack):
    """Issue 15 item 5: a 4 MiB multipart upload (over DATA_UPLOAD_MAX_MEMORY_SIZE) is
    read, spooled and parsed."""
    payload = bytes(range(256)) * (16 * 1024)
    response = requests.post(
        f"{stack.url}/upload/", files={"upload": ("data.bin", payload)}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.json() == {"upload": len(payload)}


def receive_one(layer, channel: str, attempts: int = 6) -> dict:
    """A message from `channel`; each blocking receive waits at most ~5 s (A-32)."""
    for _ in range(attempts):
        got, content = layer.receive([channel], block=True)
        if got is not None:
            return content
    raise AssertionError(f"nothing arrived on {channel}")


def test_invalid_utf8_query_string_reaches_the_view(stack):
    """Issue 15 item 8: raw non-UTF-8 query bytes give the view a QueryDict, no traceback.

    daphne's HTTP/1.1 parser refuses such bytes itself (400), so the request goes to the
    worker straight through Redis, as another ASGI 1.x server may send it.
    """
    layer = stack.layer()
    reply = "http.response.test!" + "q1"
    layer.send(
        "http.request",
        {
            "reply_channel": reply,
            "http_version": "1.1",
            "method": "GET",
            "path": "/echo/",
            "query_string": b"a=\xff&b=caf\xc3\xa9&c=%FF",
            "headers": [[b"host", b"127.0.0.1"]],
        },
    )
    try:
        response = receive_one(layer, "http.response.test!")
    finally:
        layer.close()
    assert response["status"] == 200
    assert json.loads(response["content"])["GET"] == {"a": ["ÿ"], "b": ["cafÃ©"], "c": ["\ufffd"]}
    assert "Traceback" not in stack.worker.output.text()
