"""examples/chat end to end: real browsers, daphne, runworker and a private Redis (issue 8).

The production shape of the chat (``daphne chat_example.asgi:channel_layer`` plus
``manage.py runworker`` on ``asgi_redis``, C-13, C-77) is started from the example's own
files; headless Chromium, driven by Playwright, signs up one user and logs in another,
both join the Lobby, each sees the other's message (groups, C-16; the session user, C-51),
and a reload brings the history back. Skipped, saying why, only where Playwright or a
Chromium binary is missing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.redis_harness import RedisServer, redis_server_path
from tests.examples import processes
from tests.examples.stack import Stack, django_stack

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CHAT_DIR = processes.EXAMPLES / "chat"
WAIT_MS = 20_000  # bound for every in-page wait


@pytest.fixture(scope="module")
def chat_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis, a migrated SQLite database with the demo users, daphne and a worker."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    database = tmp_path_factory.mktemp("chat") / "db.sqlite3"
    with RedisServer() as redis:
        settings_env = {
            "CHAT_CHANNEL_LAYER": "redis",
            "CHANNELS_REDIS_URL": redis.url,
            "CHAT_DATABASE": str(database),
            "CHAT_DEBUG": "1",  # runworker serves the page's static files
        }
        with django_stack(CHAT_DIR, "chat_example.asgi:channel_layer", settings_env) as s:
            s.manage("create_demo_users")
            yield s


def sign_up(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/signup/")
    page.fill("#id_username", username)
    page.fill("#id_password1", password)
    page.fill("#id_password2", password)
    page.click("#signup button[type=submit]")
    page.wait_for_url(f"{base_url}/", timeout=WAIT_MS)


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login button[type=submit]")
    page.wait_for_url(f"{base_url}/", timeout=WAIT_MS)


def enter_lobby(page, base_url: str) -> None:
    page.click("#rooms a:text('Lobby')")
    page.wait_for_url(f"{base_url}/rooms/lobby/", timeout=WAIT_MS)
    wait_connected(page)


def wait_connected(page) -> None:
    page.wait_for_selector("#status[data-state=open]", timeout=WAIT_MS)


def say(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def messages(page) -> list[str]:
    return page.locator("#log li.message").all_text_contents()


def test_two_browsers_talk_and_history_survives_reload(chat_stack: Stack, browser) -> None:
    from playwright.sync_api import expect

    carol_context = browser.new_context()
    bob_context = browser.new_context()
    try:
        carol = carol_context.new_page()
        bob = bob_context.new_page()
        sign_up(carol, chat_stack.url, "carol", "a-long-enough-password")
        log_in(bob, chat_stack.url, "bob", "channels-demo")
        enter_lobby(carol, chat_stack.url)
        enter_lobby(bob, chat_stack.url)
        # Bob joined second: Carol is told (presence events go to the whole group).
        expect(carol.locator("#log li.presence").last).to_have_text("bob joined", timeout=WAIT_MS)

        say(carol, "hello from carol")
        expect(bob.locator("#log li.message").last).to_have_text(
            "carolhello from carol", timeout=WAIT_MS
        )
        say(bob, "hi carol, bob here")
        expect(carol.locator("#log li.message").last).to_have_text(
            "bobhi carol, bob here", timeout=WAIT_MS
        )

        carol.reload()
        wait_connected(carol)
        # The history arrives in one event, oldest first, from the database.
        expect(carol.locator("#log li.message").last).to_have_text(
            "bobhi carol, bob here", timeout=WAIT_MS
        )
        assert messages(carol)[-2:] == ["carolhello from carol", "bobhi carol, bob here"]
        # The user shown is the one logged in on each page, not something the page claims.
        assert carol.text_content("#whoami") == "carol"
        assert bob.text_content("#whoami") == "bob"
    finally:
        carol_context.close()
        bob_context.close()


def test_anonymous_page_is_sent_to_login(chat_stack: Stack, browser) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{chat_stack.url}/rooms/lobby/")
        assert page.url == f"{chat_stack.url}/login/?next=/rooms/lobby/"
    finally:
        context.close()


def test_anonymous_websocket_is_refused(chat_stack: Stack) -> None:
    """No session user: the connect consumer raises DenyConnection → HTTP 403 (C-32)."""
    websocket = pytest.importorskip("websocket")
    origin = chat_stack.url
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            f"{chat_stack.ws_url}/ws/rooms/lobby/", timeout=20, origin=origin
        )
    assert refused.value.status_code == 403


def test_foreign_origin_is_refused(chat_stack: Stack) -> None:
    """allowed_hosts_only on the connect consumer refuses other sites' pages (C-65)."""
    websocket = pytest.importorskip("websocket")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            f"{chat_stack.ws_url}/ws/rooms/lobby/", timeout=20, origin="http://evil.example"
        )
    assert refused.value.status_code == 403


def logged_in_cookie(stack: Stack, username: str, password: str) -> str:
    """Log in through the real login form; return the Cookie header a browser would send."""
    requests = pytest.importorskip("requests")
    session = requests.Session()
    form = session.get(f"{stack.url}/login/", timeout=20)
    token = session.cookies["csrftoken"]
    response = session.post(
        f"{stack.url}/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": form.url},
        timeout=20,
    )
    assert response.url == f"{stack.url}/", response.text
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


def test_unknown_room_is_refused_even_when_logged_in(chat_stack: Stack) -> None:
    websocket = pytest.importorskip("websocket")
    cookie = logged_in_cookie(chat_stack, "alice", "channels-demo")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            f"{chat_stack.ws_url}/ws/rooms/no-such-room/",
            timeout=20,
            origin=chat_stack.url,
            cookie=cookie,
        )
    assert refused.value.status_code == 403


def test_bad_frames_get_an_error_and_are_not_stored(chat_stack: Stack) -> None:
    """Bad input gets a clear error; a good frame after it still goes through."""
    websocket = pytest.importorskip("websocket")
    cookie = logged_in_cookie(chat_stack, "alice", "channels-demo")
    socket = websocket.create_connection(
        f"{chat_stack.ws_url}/ws/rooms/lobby/", timeout=20, origin=chat_stack.url, cookie=cookie
    )
    try:
        assert json.loads(socket.recv())["type"] == "history"
        assert json.loads(socket.recv()) == {
            "type": "presence",
            "user": "alice",
            "action": "joined",
        }
        expected_error = 'Send JSON like {"text": "hello"} with 1 to 2000 characters.'
        for bad in ["not json", json.dumps({"text": ""}), json.dumps({"text": "x" * 2001})]:
            socket.send(bad)
            assert json.loads(socket.recv()) == {"type": "error", "error": expected_error}
        socket.send(json.dumps({"text": "still here"}))
        posted = json.loads(socket.recv())
        assert (posted["type"], posted["user"], posted["text"]) == (
            "message",
            "alice",
            "still here",
        )
    finally:
        socket.close()


@pytest.fixture
def ipc_prefix() -> Iterator[str]:
    """A fresh shared-memory store name; its files are removed afterwards (L-56.2)."""
    from asgi_ipc.store import store_directory

    prefix = f"chattest{uuid.uuid4().hex[:12]}"
    yield prefix
    for path in Path(store_directory()).glob(f"{prefix}*"):
        path.unlink(missing_ok=True)


def test_chat_on_the_ipc_layer(tmp_path: Path, ipc_prefix: str) -> None:
    """The same example on asgi_ipc (L-55, L-56): daphne and a worker on one machine."""
    websocket = pytest.importorskip("websocket")
    settings_env = {
        "CHAT_CHANNEL_LAYER": "ipc",
        "CHAT_IPC_PREFIX": ipc_prefix,
        "CHAT_DATABASE": str(tmp_path / "db.sqlite3"),
    }
    with django_stack(CHAT_DIR, "chat_example.asgi:channel_layer", settings_env) as stack:
        stack.manage("create_demo_users")
        sockets = {}
        try:
            for user in ("alice", "bob"):
                sockets[user] = websocket.create_connection(
                    f"{stack.ws_url}/ws/rooms/lobby/",
                    timeout=20,
                    origin=stack.url,
                    cookie=logged_in_cookie(stack, user, "channels-demo"),
                )
                assert json.loads(sockets[user].recv())["type"] == "history"
            sockets["alice"].send(json.dumps({"text": "over shared memory"}))
            seen = [json.loads(sockets["bob"].recv()) for _ in range(2)]
            # Bob's own "joined" event first, then Alice's message.
            assert seen[0] == {"type": "presence", "user": "bob", "action": "joined"}
            assert (seen[1]["user"], seen[1]["text"]) == ("alice", "over shared memory")
        finally:
            for socket in sockets.values():
                socket.close()
