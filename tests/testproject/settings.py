"""Django settings for the test suite: SQLite, real sessions and auth (C-82)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "test-only-secret-key-not-for-production"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "channels.delay",
    "tests.testproject.testapp",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "tests.testproject.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BASE_DIR / "db.sqlite3"),
        # One test database per test run: parallel pytest runs in one checkout would
        # create and drop a shared file under each other. The name goes through the
        # environment so daphne/runworker subprocesses of the run open the same file.
        "TEST": {
            "NAME": os.environ.setdefault(
                "CHANNELS_TEST_DB", str(BASE_DIR / f"test-db-{os.getpid()}.sqlite3")
            )
        },
    }
}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.contrib.auth.context_processors.auth"]},
    }
]

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels.layers.inmemory.ChannelLayer",
        "ROUTING": "tests.testproject.routing.channel_routing",
        "TEST_CONFIG": {},
    },
}

STATIC_URL = "/static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast tests
