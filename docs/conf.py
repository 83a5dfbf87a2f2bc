"""Sphinx configuration.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The reference is generated from the code's docstrings, and the Django-side modules need
# configured settings (and a populated app registry) to import.
import django  # noqa: E402
from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "channels",
            "channels.delay",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CHANNEL_LAYERS={},
        USE_TZ=True,
    )
    django.setup()

project = "Channels"
author = "the Channels contributors"
copyright = "the Channels contributors; BSD licence"
release = "1.1.8"
version = "1.1"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
exclude_patterns = ["_build", "README-draft.md"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"

html_theme = "alabaster"
html_theme_options = {"description": "Django Channels with channel layers", "fixed_sidebar": True}
html_static_path: list[str] = []
