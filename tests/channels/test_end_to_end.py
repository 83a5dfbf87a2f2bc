"""End to end (issue 5): daphne + runworker as separate processes on a private Redis.

Real HTTP (requests) and WebSocket (websocket-client) clients talk to daphne; the
worker serves ordinary Django views, a streaming response, a WebSocket consumer that
authenticates from the HTTP session, and a group broadcast to several sockets. The same
checks also run on the shared-memory layer (asgi_ipc), the other cross-process backend.
"""

from __future__ import annotations

import pytest
import requests
import websocket

from asgi_ipc import IPCChannelLayer
from asgi_redis import RedisChannelLayer
from support.redis_harness import RedisServer, redis_server_path
from tests.asgi_ipc.helpers import remove_store, unique_prefix
from tests.channels import e2e

pytestmark = [pytest.mark.slow]

TIMEOUT = 15  # seconds, for every client call


@pytest.fixture(scope="module", params=["redis", "ipc"])
def stack(request, tmp_path_factory):
    db = tmp_path_factory.mktemp("e2e") / "db.sqlite3"
    if request.param == "ipc":
        prefix = unique_prefix("e2e")
        env = e2e.e2e_env(db, CHANNELS_E2E_IPC_PREFIX=prefix)
        e2e.prepare_database(env)
        try:
            with e2e.daphne_and_worker(env) as running:
                running.layer = lambda: IPCChannelLayer(prefix=prefix)
                yield running
        finally:
            remove_store(prefix)
        return
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as redis:
        env = e2e.e2e_env(db, redis.url)
        e2e.prepare_database(env)
        with e2e.daphne_and_worker(env) as running:
            running.layer = lambda: RedisChannelLayer(hosts=[redis.url])
            yield running


def test_django_view(stack):
    """C-36/C-40: an ordinary Django view through daphne → Redis → worker → daphne."""
    response = requests.get(f"{stack.url}/hello/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.text == "Hello World!"
    assert response.headers["Content-Type"] == "text/plain"


def test_query_cookies_and_headers_reach_the_view(stack):
    """C-34: query string, cookies, headers, client address reach request."""
    response = requests.get(
        f"{stack.url}/echo/?a=1&a=2",
        cookies={"flavour": "oat"},
        headers={"X-Thing": "yes"},
        timeout=TIMEOUT,
    )
    data = response.json()
    assert data["GET"] == {"a": ["1", "2"]}
    assert data["COOKIES"] == {"flavour": "oat"}
    assert data["headers"]["HTTP_X_THING"] == "yes"
    assert data["remote_addr"] == "127.0.0.1"
    assert data["host"] == f"127.0.0.1:{stack.port}"


def test_streaming_response(stack):
    """C-38: a StreamingHttpResponse arrives whole, part by part."""
    with requests.get(f"{stack.url}/stream/?count=200", stream=True, timeout=TIMEOUT) as response:
        assert response.status_code == 200
        body = b"".join(response.iter_content(chunk_size=None))
    assert body == b"".join(b"part %d\n" % index for index in range(200))


def test_large_response_is_chunked_under_the_message_limit(stack):
    """C-38/C-39: a 3 MiB response travels in chunks under the 1 MiB message limit."""
    size = 3 * 1024 * 1024 + 7
    response = requests.get(f"{stack.url}/big/?size={size}", timeout=TIMEOUT)
    assert response.status_code == 200 and len(response.content) == size


def test_large_upload_uses_the_body_channel(stack):
    """C-35: a body over 1 MiB arrives through body_channel and is joined in order
    (~2 MiB: under Django's DATA_UPLOAD_MAX_MEMORY_SIZE, which the worker honours)."""
    body = bytes(range(256)) * (8 * 1024 + 3)  # ~2 MiB
    response = requests.post(
        f"{stack.url}/echo/",
        data=body,
        headers={"Content-Type": "application/octet-stream"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert response.json()["body_length"] == len(body)


def test_file_response(stack):
    """C-36: a FileResponse is streamed in blocks."""
    from tests.testproject.views import DATA_FILE

    response = requests.get(f"{stack.url}/file/", timeout=TIMEOUT)
    assert response.content == DATA_FILE.read_bytes()


def test_websocket_authenticates_from_http_session(stack):
    """C-51: log in over HTTP; the WebSocket consumer finds the user via the cookie."""
    session = requests.Session()
    login = session.post(
        f"{stack.url}/login/", data={"username": "alice", "password": "secret"}, timeout=TIMEOUT
    )
    assert login.text == "logged in as alice"
    cookie = f"sessionid={session.cookies['sessionid']}"
    ws = websocket.create_connection(f"{stack.ws_url}/auth/", cookie=cookie, timeout=TIMEOUT)
    try:
        assert ws.recv() == "hello alice"
        ws.send("hi")
        # The user came from the channel session this time (C-50).
        assert ws.recv() == "alice said hi"
    finally:
        ws.close()


def test_websocket_without_session_is_refused(stack):
    """C-32: DenyConnection → the handshake is refused with 403."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"{stack.ws_url}/auth/", timeout=TIMEOUT)
    assert info.value.status_code == 403


def test_group_broadcast_reaches_every_socket(stack):
    """C-16: a frame sent by one client is broadcast by a consumer to all group members."""
    sockets = [
        websocket.create_connection(f"{stack.ws_url}/room/", timeout=TIMEOUT) for _ in range(6)
    ]
    try:
        for round_number in range(3):
            sockets[round_number].send(f"broadcast {round_number}")
            for ws in sockets:
                assert ws.recv() == f"broadcast {round_number}"
    finally:
        for ws in sockets:
            ws.close()


def test_crashing_consumer_is_logged_and_worker_keeps_serving(stack):
    """C-32: a consumer that raises is logged with its name; the worker keeps running."""
    stack.layer().send("test.crash", {"n": 1})
    stack.worker.output.wait_for("Error processing message with consumer", timeout=TIMEOUT)
    stack.worker.output.wait_for("consumer crashed on purpose", timeout=TIMEOUT)
    assert requests.get(f"{stack.url}/hello/", timeout=TIMEOUT).text == "Hello World!"
    assert stack.worker.process.poll() is None


def test_many_requests_in_a_row(stack):
    """Nothing accepted is lost: 200 keep-alive requests all answered correctly."""
    with requests.Session() as session:
        for index in range(200):
            response = session.get(f"{stack.url}/echo/?i={index}", timeout=TIMEOUT)
            assert response.json()["GET"] == {"i": [str(index)]}
