"""``manage.py rundelay``: run the delay server (C-75)."""

from __future__ import annotations

from typing import Any

from django.core.management import BaseCommand, CommandError

from channels.delay.worker import Worker
from channels.log import setup_logger
from channels.management.commands.runworker import (
    LOCAL_ONLY_ERROR,
    add_layer_argument,
    load_layer,
)


class Command(BaseCommand):
    help = "Stores asgi.delay messages and sends each to its channel when its delay is over."

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        add_layer_argument(parser)
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
        # C-75: the same loading and refusal as runworker's (C-77, C-88).
        channel_layer = load_layer(options["layer"])
        if channel_layer.local_only():
            raise CommandError(LOCAL_ONLY_ERROR)
        self.logger.info("Running delay against channel layer %s", channel_layer)
        try:
            Worker(channel_layer=channel_layer, database_sleep_duration=options["sleep"]).run()
        except KeyboardInterrupt:
            pass
