"""The Django examples' Redis URL is ``CHANNELS_REDIS_URL``, with no default (issue 14).

A default such as ``redis://127.0.0.1:6379/0`` would write into whatever database 0 of a
shared Redis holds, so with the Redis layer chosen and the variable unset the example
stops with ``ImproperlyConfigured`` naming the variable and an example value.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.examples import processes

CASES = [("chat", "CHAT_CHANNEL_LAYER"), ("databinding", "TODO_CHANNEL_LAYER")]


@pytest.mark.parametrize(("example", "variable"), CASES)
def test_redis_layer_without_url_names_the_variable(example: str, variable: str) -> None:
    env = processes.example_env(**{variable: "redis"})
    env.pop("CHANNELS_REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=processes.EXAMPLES / example,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"django.core.exceptions.ImproperlyConfigured: {variable}=redis needs "
        "CHANNELS_REDIS_URL, the Redis database this example may use, e.g. "
        "CHANNELS_REDIS_URL=redis://127.0.0.1:6379/5 (comma-separate several URLs to shard). "
        "There is no default, so the example never writes into a database another program uses."
    )


@pytest.mark.parametrize(("example", "variable"), CASES)
def test_redis_layer_uses_the_url_given(example: str, variable: str) -> None:
    env = processes.example_env(
        **{variable: "redis"}, CHANNELS_REDIS_URL="redis://h1:1/4,redis://h2:2/4"
    )
    settings = {"chat": "chat_example.settings", "databinding": "databinding_example.settings"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from {settings[example]} import CHANNEL_LAYERS as c; "
            "print(c['default']['CONFIG']['hosts'])",
        ],
        cwd=processes.EXAMPLES / example,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['redis://h1:1/4', 'redis://h2:2/4']"
