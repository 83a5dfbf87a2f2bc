"""``manage.py rundelay``: run the delay server (C-75)."""

from __future__ import annotations

from typing import Any

from django.core.management import BaseCommand, CommandError

from channels import DEFAULT_CHANNEL_LAYER
from channels.asgi import channel_layers
from channels.delay.worker import Worker
from channels.log import setup_logger

# C-75: the same refusal as runworker's (C-77); a process-local layer cannot reach us.
LOCAL_LAYER_ERROR = (
    "You cannot span multiple processes with the in-memory layer. "
    "Change your settings to use a cross-process channel layer."
)


class Command(BaseCommand):
    help = "Stores asgi.delay messages and sends each to its channel when its delay is over."

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--layer",
            action="store",
            dest="layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="Channel layer alias to use, if not the default.",
        )
        parser.add_argument(
            "--sleep",
            action="store",
            dest="sleep",
            default=1.0,
            type=float,
            help="Seconds between checks for due messages (default 1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.logger = setup_logger("django.channels", options.get("verbosity", 1))
        if options["sleep"] <= 0:
            raise CommandError(
                f"--sleep must be a positive number of seconds, not {options['sleep']}"
            )
        channel_layer = channel_layers[options["layer"]]
        if channel_layer.local_only():
            raise CommandError(LOCAL_LAYER_ERROR)
        self.logger.info("Running delay against channel layer %s", channel_layer)
        try:
            Worker(channel_layer=channel_layer, database_sleep_duration=options["sleep"]).run()
        except KeyboardInterrupt:
            pass
