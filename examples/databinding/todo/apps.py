from django.apps import AppConfig


class TodoConfig(AppConfig):
    name = "todo"

    def ready(self) -> None:
        # Import the bindings in every process (workers, daphne's Django-free side needs
        # none, manage.py shell, the admin): a save anywhere must reach the browsers.
        from . import bindings  # noqa: F401
