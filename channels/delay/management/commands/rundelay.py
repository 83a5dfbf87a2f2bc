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

# The shortest period between checks for due messages (seconds).
MIN_SLEEP = 0.01


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
        sleep = options["sleep"]
        if sleep < MIN_SLEEP:
            # 1.x checked continuously; a short positive period does that without spinning.
            self.stderr.write(f"--sleep {sleep} is too short: checking every {MIN_SLEEP} s")
            sleep = MIN_SLEEP
        # C-75: the same loading and refusal as runworker's (C-77, C-88).
        channel_layer = load_layer(options["layer"])
        if channel_layer.local_only():
            raise CommandError(LOCAL_ONLY_ERROR)
        self.logger.info("Running delay against channel layer %s", channel_layer)
        try:
            Worker(channel_layer=channel_layer, database_sleep_duration=sleep).run()
        except KeyboardInterrupt:
            pass
