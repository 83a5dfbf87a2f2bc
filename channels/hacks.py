"""Make staticfiles' runserver run the Channels server (C-6)."""

__all__ = ["monkeypatch_django"]


def monkeypatch_django() -> None:
    """Rebase staticfiles' runserver `Command` onto ours; safe to call repeatedly."""
    from django.contrib.staticfiles.management.commands import runserver as static_runserver

    from .management.commands.runserver import Command as ChannelsRunserver

    static_runserver.Command.__bases__ = (ChannelsRunserver,)
