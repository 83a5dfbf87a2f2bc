"""The Channels app configuration (C-4)."""

from django.apps import AppConfig

__all__ = ["ChannelsConfig"]


class ChannelsConfig(AppConfig):
    name = "channels"
    verbose_name = "Channels"

    def ready(self) -> None:
        from . import hacks, package_checks

        package_checks.check_all()
        hacks.monkeypatch_django()
        _register_bindings()


def _register_bindings() -> None:
    try:
        from .binding.base import BindingMetaclass
    except ModuleNotFoundError as error:
        # The binding package is written in parallel; skip until it exists.
        if error.name not in ("channels.binding", "channels.binding.base"):
            raise
        return
    BindingMetaclass.register_all()
