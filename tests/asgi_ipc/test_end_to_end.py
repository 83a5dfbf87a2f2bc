"""daphne + runworker as separate processes talking through the IPC layer (issue 7).

The same stack on `RedisLocalChannelLayer` runs too: requests travel through IPC,
replies through a private Redis (L-47). Real HTTP and WebSocket clients.
"""

from __future__ import annotations

import pytest
import requests
import websocket

from support.redis_harness import RedisServer, redis_server_path
from tests.asgi_ipc.helpers import remove_store, unique_prefix
from tests.channels import e2e
from tests.examples import processes

pytestmark = pytest.mark.slow

TIMEOUT = 15  # seconds, for every client call
SETTINGS = "tests.asgi_ipc.e2e_settings"


def stack_env(db, prefix: str, redis_url: str | None = None) -> dict[str, str]:
    extra = {"CHANNELS_E2E_REDIS": redis_url} if redis_url else {}
    return processes.example_env(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        CHANNELS_E2E_DB=str(db),
        CHANNELS_E2E_IPC_PREFIX=prefix,
        **extra,
    )


@pytest.fixture(scope="module", params=["ipc", "redis-local"])
def stack(request, tmp_path_factory):
    prefix = unique_prefix("e2e")
    if request.param == "ipc":
        env = stack_env(tmp_path_factory.mktemp("ipc-e2e") / "db.sqlite3", prefix)
        e2e.prepare_database(env)
        try:
            with e2e.daphne_and_worker(env) as running:
                yield running
        finally:
            remove_store(prefix)
        return
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as redis:
        env = stack_env(tmp_path_factory.mktemp("local-e2e") / "db.sqlite3", prefix, redis.url)
        e2e.prepare_database(env)
        try:
            with e2e.daphne_and_worker(env) as running:
                yield running
        finally:
            remove_store(prefix)


def test_django_view(stack):
    """An ordinary Django view: daphne -> layer -> runworker -> layer -> daphne."""
    for _ in range(20):
        response = requests.get(f"{stack.url}/hello/", timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.text == "Hello World!"


def test_streaming_response(stack):
    """Many reply messages on one process-specific channel arrive in order (A-19)."""
    with requests.get(f"{stack.url}/stream/?count=200", stream=True, timeout=TIMEOUT) as response:
        assert response.status_code == 200
        body = b"".join(response.iter_content(chunk_size=None))
    assert body == b"".join(b"part %d\n" % index for index in range(200))


def test_large_upload_uses_a_single_reader_channel(stack):
    """A body over 1 MiB travels on a ``?`` body channel from new_channel (A-34, A-78)."""
    body = bytes(range(256)) * (8 * 1024 + 3)  # ~2 MiB: under Django's 2.5 MB limit
    response = requests.post(
        f"{stack.url}/echo/",
        data=body,
        headers={"Content-Type": "application/octet-stream"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert response.json()["body_length"] == len(body)


def test_group_broadcast_to_websockets(stack):
    """Groups: a frame sent by one socket reaches every socket in the room."""
    sockets = [websocket.create_connection(f"{stack.ws_url}/room/", timeout=TIMEOUT)]
    try:
        sockets.append(websocket.create_connection(f"{stack.ws_url}/room/", timeout=TIMEOUT))
        sockets[0].send("hi all")
        assert [ws.recv() for ws in sockets] == ["hi all", "hi all"]
    finally:
        for ws in sockets:
            ws.close()
