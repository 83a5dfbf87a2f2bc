"""The Channels app configuration (C-4)."""

from django.apps import AppConfig

__all__ = ["ChannelsConfig"]


class ChannelsConfig(AppConfig):
    name = "channels"
    verbose_name = "Channels"

    def ready(self) -> None:
        # Imported here: these need the app registry, which is being populated.
        from .binding.base import BindingMetaclass
        from .hacks import monkeypatch_django
        from .package_checks import check_all

        check_all()
        monkeypatch_django()
        BindingMetaclass.register_all()
