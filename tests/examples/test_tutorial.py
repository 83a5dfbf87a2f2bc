"""docs/tutorial.rst, followed step by step (issue 14, point 9).

The tutorial's code lives in files under ``docs/tutorial/`` that the page shows with
``literalinclude``; this test builds the project the way the page says, from exactly those
files: ``django-admin startproject mysite``, ``startapp chat``, the settings edits, the
consumers, routing, views, URLs and templates. It then runs ``manage.py runserver`` (the
in-memory layer, one process) and, as the tutorial's second part does, ``daphne`` plus
``manage.py runworker`` on a private Redis; in both, two real WebSocket clients join a
room and each receives what the other sends (groups, C-16; path routing, C-23).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from support.redis_harness import RedisServer, free_port, redis_server_path
from tests.examples import processes

pytestmark = pytest.mark.slow

DOCS = processes.REPO / "docs"
TUTORIAL = DOCS / "tutorial"
PAGE = DOCS / "tutorial.rst"

# Where each included file goes in the new project (relative to the directory holding
# manage.py). Settings fragments are handled apart: the page says how to apply them.
COPIED = {
    "chat/consumers.py": "chat/consumers.py",
    "mysite/routing.py": "mysite/routing.py",
    "chat/views.py": "chat/views.py",
    "mysite/urls.py": "mysite/urls.py",
    "chat/templates/chat/index.html": "chat/templates/chat/index.html",
    "chat/templates/chat/room.html": "chat/templates/chat/room.html",
}
SETTINGS_FRAGMENTS = {"installed_apps.py", "channel_layers.py", "channel_layers_redis.py"}
PRODUCTION = {"mysite/asgi.py": "mysite/asgi.py"}


def included_files() -> set[str]:
    """The tutorial/... paths the page includes with literalinclude."""
    found = re.findall(r"^\.\. literalinclude:: tutorial/(\S+)$", PAGE.read_text(), re.M)
    return set(found)


def test_the_page_includes_every_file_this_test_uses() -> None:
    """The page and this test use the same files: none is shown but not run, or run
    but not shown."""
    used = set(COPIED) | SETTINGS_FRAGMENTS | set(PRODUCTION)
    assert included_files() == used
    on_disk = {
        str(path.relative_to(TUTORIAL))
        for path in TUTORIAL.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert on_disk == used


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def project_env(project: Path, **overrides: str) -> dict[str, str]:
    env = processes.example_env(**overrides)
    # The new project first on the path, as when running manage.py from its directory.
    env["PYTHONPATH"] = f"{project}:{env['PYTHONPATH']}"
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's steps, done in a new directory; returns the one with manage.py."""
    root = tmp_path_factory.mktemp("tutorial")
    env = project_env(root / "mysite")
    # "django-admin startproject mysite" (the same command, run by this interpreter).
    run(["-m", "django", "startproject", "mysite"], root, env)
    project = root / "mysite"
    run(["manage.py", "startapp", "chat"], project, env)

    settings = project / "mysite" / "settings.py"
    text = settings.read_text()
    generated = re.search(r"^INSTALLED_APPS = \[\n.*?^\]\n", text, re.M | re.S)
    assert generated, "startproject's settings.py has no INSTALLED_APPS list"
    wanted = (TUTORIAL / "installed_apps.py").read_text()
    # The page says: add "channels" and "chat" to the list startproject wrote.
    assert re.findall(r'"([^"]+)"', wanted) == [
        *re.findall(r"'([^']+)'", generated.group()),
        "channels",
        "chat",
    ]
    text = text.replace(generated.group(), wanted)
    text += "\n" + (TUTORIAL / "channel_layers.py").read_text()
    settings.write_text(text)

    for source, target in COPIED.items():
        destination = project / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TUTORIAL / source, destination)
    run(["manage.py", "migrate", "--verbosity", "0"], project, env)
    return project


def chat_between_two_clients(ws_url: str) -> None:
    """Two sockets in one room: each gets its own and the other's messages; a bad frame
    gets the error reply only."""
    first = websocket.create_connection(f"{ws_url}/ws/chat/lobby/", timeout=20)
    second = websocket.create_connection(f"{ws_url}/ws/chat/lobby/", timeout=20)
    elsewhere = websocket.create_connection(f"{ws_url}/ws/chat/kitchen/", timeout=20)
    try:
        first.send(json.dumps({"message": "hello from the first"}))
        assert json.loads(second.recv()) == {"message": "hello from the first"}
        assert json.loads(first.recv()) == {"message": "hello from the first"}
        second.send(json.dumps({"message": "and from the second"}))
        assert json.loads(first.recv()) == {"message": "and from the second"}
        assert json.loads(second.recv()) == {"message": "and from the second"}

        second.send("not json")
        assert json.loads(second.recv()) == {"error": 'Send JSON like {"message": "hello"}.'}
        # The other room heard nothing of the lobby: its next frame is its own.
        elsewhere.send(json.dumps({"message": "kitchen only"}))
        assert json.loads(elsewhere.recv()) == {"message": "kitchen only"}
        first.send(json.dumps({"message": "still here"}))
        assert json.loads(first.recv()) == {"message": "still here"}
    finally:
        for connection in (first, second, elsewhere):
            connection.close()


def check_pages(http_url: str) -> None:
    with urllib.request.urlopen(f"{http_url}/", timeout=30) as page:
        assert "Which room?" in page.read().decode()
    with urllib.request.urlopen(f"{http_url}/chat/lobby/", timeout=30) as page:
        body = page.read().decode()
    assert "<h1>Room lobby</h1>" in body
    assert '<script id="room-name" type="application/json">"lobby"</script>' in body


@pytest.fixture(scope="module")
def runserver(project: Path) -> Iterator[str]:
    port = free_port()
    env = project_env(project)
    process, output = processes.start(
        ["manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], project, env
    )
    try:
        output.wait_for("Quit the server with CONTROL-C.", timeout=120)
        processes.wait_for_port(port, process, timeout=30, output=output)
        yield f"127.0.0.1:{port}"
    finally:
        processes.stop([process])
        output.close()


def test_runserver_serves_the_pages(runserver: str) -> None:
    check_pages(f"http://{runserver}")


def test_runserver_chat_between_two_websockets(runserver: str) -> None:
    chat_between_two_clients(f"ws://{runserver}")


def test_room_page_javascript_chats_in_two_browsers(runserver: str, browser) -> None:
    """The template's JavaScript, in headless Chromium: type in one page, see it in both."""
    from playwright.sync_api import expect

    pages = []
    contexts = [browser.new_context(), browser.new_context()]
    try:
        for context in contexts:
            page = context.new_page()
            page.goto(f"http://{runserver}/")
            page.fill("#room-name", "browsers")
            page.press("#room-name", "Enter")
            page.wait_for_url(f"http://{runserver}/chat/browsers/", timeout=20_000)
            expect(page.locator("#status")).to_have_text("Connected", timeout=20_000)
            pages.append(page)
        pages[0].fill("#message", "typed in a page")
        pages[0].press("#message", "Enter")
        for page in pages:
            expect(page.locator("#log li")).to_have_text(["typed in a page"], timeout=20_000)
    finally:
        for context in contexts:
            context.close()


@pytest.mark.redis
def test_daphne_runworker_and_redis_chat(project: Path, tmp_path: Path) -> None:
    """The tutorial's second part: the Redis layer, asgi.py, daphne and runworker."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    production = tmp_path / "mysite"
    shutil.copytree(project, production)
    settings = production / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text() + "\n" + (TUTORIAL / "channel_layers_redis.py").read_text()
    )
    for source, target in PRODUCTION.items():
        shutil.copyfile(TUTORIAL / source, production / target)
    with RedisServer() as redis:
        env = project_env(production, CHANNELS_REDIS_URL=redis.url)
        port = free_port()
        daphne = [
            "-c",
            "from daphne.cli import CommandLineInterface; CommandLineInterface.entrypoint()",
            *("-b", "127.0.0.1", "-p", str(port), "mysite.asgi:channel_layer"),
        ]
        started = [
            processes.start(daphne, production, env),
            processes.start(["manage.py", "runworker"], production, env),
        ]
        try:
            started[0][1].wait_for("Listening on endpoint", timeout=60)
            started[1][1].wait_for("Listening on channels", timeout=60)
            processes.wait_for_port(port, started[0][0], timeout=30, output=started[0][1])
            check_pages(f"http://127.0.0.1:{port}")
            chat_between_two_clients(f"ws://127.0.0.1:{port}")
        finally:
            processes.stop(process for process, _ in started)
            for _, output in started:
                output.close()
