"""App config, package checks, naming helper and logging setup (C-4, C-5, C-7, C-76)."""

from __future__ import annotations

import functools
import logging
import sys
import types
from unittest import mock

import pytest
from django.apps import apps

import channels.log
from channels import package_checks
from channels.apps import ChannelsConfig
from channels.log import setup_logger
from channels.utils import name_that_thing


def test_app_config_is_selected():
    """C-4: ChannelsConfig is the app's config, with its name and verbose name."""
    config = apps.get_app_config("channels")
    assert type(config) is ChannelsConfig
    assert config.name == "channels" and config.verbose_name == "Channels"


def test_ready_registers_bindings_and_patches_runserver():
    """C-4: ready() ran the checks, the runserver rebase and BindingMetaclass.register_all."""
    from django.contrib.staticfiles.management.commands import runserver as static_runserver

    from channels.binding.base import BindingMetaclass
    from channels.management.commands.runserver import Command

    assert static_runserver.Command.__bases__ == (Command,)
    assert BindingMetaclass.register_immediately is True


@pytest.fixture
def fake_layer_package():
    """Put a real (tiny) module named asgi_rabbitmq on sys.modules for the check."""
    module = types.ModuleType("asgi_rabbitmq")
    saved = sys.modules.get("asgi_rabbitmq")
    sys.modules["asgi_rabbitmq"] = module
    yield module
    if saved is None:
        del sys.modules["asgi_rabbitmq"]
    else:
        sys.modules["asgi_rabbitmq"] = saved


@pytest.mark.parametrize("version", ["0.3.9", "0.3.99", "0.0.1"])
def test_old_layer_package_is_refused(fake_layer_package, version):
    """C-5: an older layer package → RuntimeError naming package and minimum."""
    fake_layer_package.__version__ = version
    with pytest.raises(
        RuntimeError, match="Your version of asgi_rabbitmq is too old - it must be at least 0.4.0"
    ):
        package_checks.check_all()


@pytest.mark.parametrize("version", ["0.4.0", "0.4", "0.10.0", "1.0rc1"])
def test_new_enough_layer_package_passes(fake_layer_package, version):
    """C-5: numeric comparison (0.10 > 0.4); the project's own packages pass."""
    fake_layer_package.__version__ = version
    package_checks.check_all()


def test_project_layer_packages_are_new_enough():
    """C-5: asgi_redis and asgi_ipc from this project pass the check."""
    import asgi_ipc
    import asgi_redis

    for module, minimum in ((asgi_redis, "1.2.0"), (asgi_ipc, "1.3.0")):
        version = getattr(module, "__version__", None)
        assert version is not None, f"{module.__name__} has no __version__"
        assert package_checks._numeric(version) >= package_checks._numeric(minimum)


class Thing:
    def method(self):
        pass


def plain_function():
    pass


def test_name_that_thing():
    """C-7: functions, classes, bound methods, instances, mocks, other values."""
    assert name_that_thing(plain_function) == "tests.channels.test_apps.plain_function"
    assert name_that_thing(Thing) == "tests.channels.test_apps.Thing"
    assert name_that_thing(Thing().method) == "tests.channels.test_apps.Thing.method"
    assert name_that_thing(Thing()) == "tests.channels.test_apps.Thing"
    assert name_that_thing(mock.Mock()) == "<mock>"
    assert name_that_thing(mock.MagicMock()) == "<mock>"
    assert name_that_thing(42) == "42" and name_that_thing("x") == "'x'"
    assert name_that_thing(functools.partial(plain_function)) == "functools.partial"


def test_name_that_thing_never_raises():
    """C-7: even an object whose attributes raise gets a name."""

    class Hostile:
        def __getattribute__(self, name):
            raise RuntimeError("no attributes for you")

    assert isinstance(name_that_thing(Hostile()), str)


def test_setup_logger_uses_module_handler(monkeypatch):
    """C-76: the module-level handler (looked up at call time), format, level, no propagation."""
    handler = logging.StreamHandler()
    monkeypatch.setattr(channels.log, "handler", handler)
    names = [
        "tests.setup_logger_probe",
        "daphne.ws_protocol",
        "daphne.http_protocol",
        "daphne.server",
    ]
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    try:
        logger = setup_logger("tests.setup_logger_probe", verbosity=1)
        assert logger.name == "tests.setup_logger_probe"
        for name in names:
            target = logging.getLogger(name)
            assert handler in target.handlers
            assert target.level == logging.INFO and target.propagate is False
        assert handler.formatter._fmt == "%(asctime)s - %(levelname)s - %(module)s - %(message)s"
        setup_logger("tests.setup_logger_probe", verbosity=2)
        assert logger.level == logging.DEBUG
        assert logger.handlers.count(handler) == 1
    finally:
        for name, (level, propagate) in saved.items():
            target = logging.getLogger(name)
            target.removeHandler(handler)
            target.setLevel(level)
            target.propagate = propagate
