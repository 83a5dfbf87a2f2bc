"""The Channels app configuration (C-4)."""

from django.apps import AppConfig
from django.core import checks

__all__ = ["ChannelsConfig"]


class ChannelsConfig(AppConfig):
    name = "channels"
    verbose_name = "Channels"

    def ready(self) -> None:
        # Imported here: these need the app registry, which is being populated.
        from .binding.base import BindingMetaclass
        from .checks import check_settings
        from .hacks import monkeypatch_django
        from .package_checks import check_all

        check_all()
        monkeypatch_django()
        BindingMetaclass.register_all()
        # The channels.* settings checks (issue 14), run by check/runserver/runworker.
        checks.register(check_settings, "channels")
