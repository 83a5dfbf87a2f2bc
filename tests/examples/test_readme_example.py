"""The README's first command: ``scripts/example`` gives a working chat (issue 8).

Runs the real script (install step skipped, ``CHANNELS_EXAMPLE_SKIP_INSTALL=1``): it
migrates, creates the demo users and starts ``manage.py runserver`` on the in-memory layer,
daphne and worker threads in one process (C-78, C-79). Two browsers log in as the demo
users and talk in the Lobby, as the README tells a new user to do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.redis_harness import free_port
from tests.examples import processes

pytestmark = pytest.mark.slow

WAIT_MS = 20_000


@pytest.fixture(scope="module")
def example_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("readme") / "db.sqlite3"
    env = processes.example_env(CHAT_DATABASE=str(database), CHANNELS_EXAMPLE_SKIP_INSTALL="1")
    env.pop("CHAT_CHANNEL_LAYER", None)  # the README's path: the in-memory default
    port = free_port()
    script = str(processes.REPO / "scripts" / "example")
    process, output = processes.start_command(
        [script, f"127.0.0.1:{port}", "--noreload"], processes.REPO, env
    )
    try:
        output.wait_for("Quit the server with CONTROL-C.", timeout=120)
        processes.wait_for_port(port, process, timeout=30, output=output)
        yield f"http://127.0.0.1:{port}"
    finally:
        processes.stop([process])
        output.close()


def log_in_to_lobby(browser, url: str, username: str):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "channels-demo")
    page.click("#login button[type=submit]")
    page.wait_for_url(f"{url}/", timeout=WAIT_MS)
    page.click("#rooms a:text('Lobby')")
    page.wait_for_selector("#status[data-state=open]", timeout=WAIT_MS)
    return context, page


def test_demo_users_talk_on_runserver(example_url: str, browser) -> None:
    from playwright.sync_api import expect

    alice_context, alice = log_in_to_lobby(browser, example_url, "alice")
    bob_context, bob = log_in_to_lobby(browser, example_url, "bob")
    try:
        alice.fill("#text", "hi bob")
        alice.press("#text", "Enter")
        expect(bob.locator("#log li.message").last).to_have_text("alicehi bob", timeout=WAIT_MS)
        bob.fill("#text", "hi alice")
        bob.press("#text", "Enter")
        expect(alice.locator("#log li.message").last).to_have_text("bobhi alice", timeout=WAIT_MS)
    finally:
        alice_context.close()
        bob_context.close()


def test_login_page_names_the_demo_users(example_url: str) -> None:
    """Issue 14: the login page says how to log in when the demo users exist."""
    import requests

    page = requests.get(f"{example_url}/login/", timeout=30)
    assert page.status_code == 200
    assert "Demo users alice / bob, password <code>channels-demo</code>." in page.text


def test_unknown_room_redirects_to_the_list_saying_so(example_url: str) -> None:
    """Issue 14: a stale room link gives the room list and a message, not Django's 404."""
    import requests

    with requests.Session() as session:
        session.get(f"{example_url}/login/", timeout=30)
        logged_in = session.post(
            f"{example_url}/login/",
            data={
                "username": "alice",
                "password": "channels-demo",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{example_url}/login/"},
            timeout=30,
        )
        assert logged_in.url == f"{example_url}/"
        page = session.get(f"{example_url}/rooms/no-such-room/", timeout=30)
    assert page.status_code == 200
    assert [r.status_code for r in page.history] == [302]
    assert page.url == f"{example_url}/"
    assert "There is no room “no-such-room”. Pick one below or create it." in page.text
    assert "Lobby" in page.text
