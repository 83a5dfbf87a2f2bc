"""examples/databinding end to end: model changes appear live in real browsers (issue 8).

Two Chromium pages load the to-do list through daphne + runworker + a private Redis. The
page talks through the JavaScript ``WebSocketBridge`` (C-84, C-85) to a
``WebsocketDemultiplexer`` (C-57) whose ``items`` stream is a ``WebsocketBinding`` (C-59..
C-62): a create, update and delete made in one page show in the other, and so does a save
made by a separate process (``manage.py shell``), which reaches the pages only through the
binding's group send (C-60).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.redis_harness import RedisServer, redis_server_path
from tests.examples import processes
from tests.examples.stack import Stack, django_stack

pytestmark = [pytest.mark.redis, pytest.mark.slow]

EXAMPLE_DIR = processes.EXAMPLES / "databinding"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def todo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    database = tmp_path_factory.mktemp("todo") / "db.sqlite3"
    with RedisServer() as redis:
        settings_env = {
            "TODO_CHANNEL_LAYER": "redis",
            "CHANNELS_REDIS_URL": redis.url,
            "TODO_DATABASE": str(database),
            "TODO_DEBUG": "1",
        }
        asgi = "databinding_example.asgi:channel_layer"
        with django_stack(EXAMPLE_DIR, asgi, settings_env) as stack:
            yield stack


def open_list(browser, url: str):
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#status[data-state=open]", timeout=WAIT_MS)
    return context, page


def test_changes_from_a_page_and_from_another_process_appear_live(
    todo_stack: Stack, browser
) -> None:
    from playwright.sync_api import expect

    first_context, first = open_list(browser, todo_stack.url + "/")
    second_context, second = open_list(browser, todo_stack.url + "/")
    try:
        # Create in one page: the binding's outbound message reaches both.
        first.fill("#name", "buy milk")
        first.press("#name", "Enter")
        milk = second.locator("#items li", has_text="buy milk")
        expect(milk).to_have_count(1, timeout=WAIT_MS)
        expect(first.locator("#items li", has_text="buy milk")).to_have_count(1)

        # Update from the other page.
        milk.locator("input[type=checkbox]").check()
        expect(first.locator("#items li.done", has_text="buy milk")).to_have_count(
            1, timeout=WAIT_MS
        )

        # A save in another process entirely.
        todo_stack.manage(
            "shell", "-c", "from todo.models import Item; Item.objects.create(name='from shell')"
        )
        for page in (first, second):
            expect(page.locator("#items li", has_text="from shell")).to_have_count(
                1, timeout=WAIT_MS
            )

        # Delete from the first page.
        first.locator("#items li", has_text="buy milk").locator("button").click()
        expect(second.locator("#items li", has_text="buy milk")).to_have_count(0, timeout=WAIT_MS)

        # The database agrees with what the pages show.
        names = todo_stack.manage(
            "shell",
            "-c",
            "from todo.models import Item; print(sorted(Item.objects.values_list('name', 'done')))",
        )
        assert names.strip().splitlines()[-1] == "[('from shell', False)]"
    finally:
        first_context.close()
        second_context.close()
