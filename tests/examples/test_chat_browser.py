"""examples/chat end to end: real browsers, daphne, runworker and a private Redis (issue 8).

The production shape of the chat (``daphne chat_example.asgi:channel_layer`` plus
``manage.py runworker`` on ``asgi_redis``, C-13, C-77) is started from the example's own
files; headless Chromium, driven by Playwright, signs up one user and logs in another,
both join the Lobby, each sees the other's message (groups, C-16; the session user, C-51),
and a reload brings the history back. Skipped, saying why, only where Playwright or a
Chromium binary is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.examples import processes
from tests.redis_harness import RedisServer, free_port, redis_server_path

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CHAT_DIR = processes.EXAMPLES / "chat"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000  # bound for every in-page wait


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


@dataclass
class ChatStack:
    url: str
    ws_url: str
    daphne: processes.Output
    worker: processes.Output


@pytest.fixture(scope="module")
def chat_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatStack]:
    """Redis, a migrated SQLite database with the demo users, daphne and a worker."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    database = tmp_path_factory.mktemp("chat") / "db.sqlite3"
    with RedisServer() as redis:
        env = processes.example_env(
            CHAT_CHANNEL_LAYER="redis",
            CHAT_REDIS_HOSTS=redis.url,
            CHAT_DATABASE=str(database),
            CHAT_DEBUG="1",  # runworker serves the page's static files
        )
        manage(env, "migrate", "--verbosity", "0")
        manage(env, "create_demo_users")
        port = free_port()
        daphne = processes.start(
            [
                "-c",
                "from daphne.cli import CommandLineInterface; CommandLineInterface.entrypoint()",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "chat_example.asgi:channel_layer",
            ],
            CHAT_DIR,
            env,
        )
        worker = processes.start(["manage.py", "runworker", "--threads", "2"], CHAT_DIR, env)
        started = [daphne, worker]
        try:
            daphne[1].wait_for("Listening on endpoint", timeout=60)
            worker[1].wait_for("Listening on channels", timeout=60)
            processes.wait_for_port(port, daphne[0], timeout=30)
            yield ChatStack(
                f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", daphne[1], worker[1]
            )
        finally:
            processes.stop(process for process, _ in started)
            for _, output in started:
                output.close()


def manage(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=CHAT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def browser(chat_stack: ChatStack):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
    )
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install chromium); browser test skipped")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


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


def test_two_browsers_talk_and_history_survives_reload(chat_stack: ChatStack, browser) -> None:
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
        expect(carol.locator("#log li.message")).to_have_count(2, timeout=WAIT_MS)
        assert messages(carol) == ["carolhello from carol", "bobhi carol, bob here"]
        # The user shown is the one logged in on each page, not something the page claims.
        assert carol.text_content("#whoami") == "carol"
        assert bob.text_content("#whoami") == "bob"
    finally:
        carol_context.close()
        bob_context.close()


def test_anonymous_page_is_sent_to_login(chat_stack: ChatStack, browser) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{chat_stack.url}/rooms/lobby/")
        assert page.url == f"{chat_stack.url}/login/?next=/rooms/lobby/"
    finally:
        context.close()


def test_anonymous_websocket_is_refused(chat_stack: ChatStack) -> None:
    """No session user: the connect consumer raises DenyConnection → HTTP 403 (C-32)."""
    websocket = pytest.importorskip("websocket")
    origin = chat_stack.url
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            f"{chat_stack.ws_url}/ws/rooms/lobby/", timeout=20, origin=origin
        )
    assert refused.value.status_code == 403


def test_foreign_origin_is_refused(chat_stack: ChatStack) -> None:
    """allowed_hosts_only on the connect consumer refuses other sites' pages (C-65)."""
    websocket = pytest.importorskip("websocket")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            f"{chat_stack.ws_url}/ws/rooms/lobby/", timeout=20, origin="http://evil.example"
        )
    assert refused.value.status_code == 403
