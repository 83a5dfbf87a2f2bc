"""The channel layer argument: every first-hour mistake ends in one line that says what
exists and what to write (D-6, D-62, issue 14 points 4 and 6).

Each test makes the mistake in a throwaway project directory (daphne puts the current
directory first on sys.path) and runs the real ``daphne`` command there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SNIPPET = (
    'import os; os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings"); '
    "from channels.asgi import get_channel_layer; channel_layer = get_channel_layer()"
)

# What Django 5.2's startproject writes (docstring left out).
DJANGO_ASGI = """\
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

application = get_asgi_application()
"""

CHANNELS_ASGI = """\
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
from channels.asgi import get_channel_layer
channel_layer = get_channel_layer({alias!r})
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    package = tmp_path / "myproject"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(
        'SECRET_KEY = "test"\n'
        'INSTALLED_APPS = ["channels"]\n'
        "CHANNEL_LAYERS = {\n"
        '    "default": {\n'
        '        "BACKEND": "channels.layers.inmemory.ChannelLayer",\n'
        '        "ROUTING": "myproject.routing.channel_routing",\n'
        "    },\n"
        "}\n"
    )
    (package / "routing.py").write_text("channel_routing = []\n")
    (package / "asgi.py").write_text(DJANGO_ASGI)
    (package / "misspelled.py").write_text(CHANNELS_ASGI.format(alias="defualt"))
    (package / "good.py").write_text(CHANNELS_ASGI.format(alias="default"))
    (package / "bare.py").write_text(
        "from channels.layers.inmemory import ChannelLayer\nchannel_layer = ChannelLayer()\n"
    )
    return tmp_path


def daphne_in(directory: Path, *args: str) -> str:
    """Run daphne in `directory`; return its one error line (after checking exit 1)."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from daphne.cli import CommandLineInterface as C; C.entrypoint()",
            *args,
        ],
        cwd=directory,
        # As in a fresh shell: the project's modules set DJANGO_SETTINGS_MODULE.
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("daphne: error: ")]
    assert errors == [lines[-1]], result.stderr
    assert "Traceback" not in result.stderr
    return lines[-1]


def test_djangos_generated_asgi_application_says_what_to_write(project):
    line = daphne_in(project, "myproject.asgi:application")
    assert "myproject.asgi:application is not a channel layer but an ASGI application" in line
    assert f"Replace myproject/asgi.py with: {SNIPPET}" in line
    assert line.endswith("run: daphne myproject.asgi:channel_layer")


def test_module_without_channel_layer_gets_the_snippet(project):
    line = daphne_in(project, "myproject.asgi:channel_layer")
    assert "myproject.asgi has no attribute 'channel_layer'" in line
    assert line.endswith(f"put this in myproject/asgi.py: {SNIPPET}")


def test_misspelled_attribute_names_the_layer_that_exists(project):
    line = daphne_in(project, "myproject.good:channel_layr")
    assert line.endswith(
        "myproject.good has no attribute 'channel_layr'; it defines a channel layer: "
        "write myproject.good:channel_layer"
    )


def test_misspelled_alias_names_the_aliases_that_exist(project):
    line = daphne_in(project, "myproject.misspelled:channel_layer")
    assert "'defualt'" in line
    assert "CHANNEL_LAYERS defines 'default'" in line
    assert "get_channel_layer()" in line


def test_misspelled_module_suggests_the_one_that_exists(project):
    line = daphne_in(project, "myproject.asgii:channel_layer")
    assert line.endswith("No module named 'myproject.asgii'; did you mean myproject.asgi?")


def test_module_without_colon_suggests_the_attribute(project):
    line = daphne_in(project, "myproject.good")
    assert line.endswith("did you mean myproject.good:channel_layer?")


@pytest.mark.parametrize("path", ["myproject.good:channel_layer", "myproject.bare:channel_layer"])
def test_in_memory_layer_is_refused(project, path):
    """Through Django's settings or built directly: no worker could ever answer."""
    line = daphne_in(project, path)
    assert line.startswith(f"daphne: error: {path} is the in-memory channel layer")
    assert "asgi_redis.RedisChannelLayer" in line
    assert "python manage.py runserver" in line
