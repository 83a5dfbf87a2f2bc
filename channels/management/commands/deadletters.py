"""``manage.py deadletters [--layer ALIAS] list|requeue|purge [--channel PATTERN]`` (issue 17).

Dead letters are at-least-once messages that reached ``max_deliveries`` without
being acknowledged (`channels.layers.delivery`). ``list`` prints them (channel,
deliveries, when, content); ``requeue`` puts them back on their channels (their
delivery counts start over); ``purge`` deletes them. ``--channel`` is a glob over
channel names (default every channel).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management import BaseCommand, CommandError

from channels import DEFAULT_CHANNEL_LAYER
from channels.management.commands.runworker import add_layer_argument, load_layer

__all__ = ["Command"]


def _plural(count: int) -> str:
    return f"{count} dead letter{'' if count == 1 else 's'}"


class Command(BaseCommand):
    help = "Lists, requeues or purges the dead letters of at-least-once channels."

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        add_layer_argument(parser)
        parser.add_argument("action", choices=["list", "requeue", "purge"])
        parser.add_argument(
            "--channel",
            default="*",
            help="Only channels matching this glob pattern (default: every channel).",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=100,
            help="With list: print at most this many letters (default 100).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options.get("layer", DEFAULT_CHANNEL_LAYER)
        layer = load_layer(alias)
        if "at_least_once" not in layer.extensions:
            raise CommandError(
                f"Channel layer {alias!r} has no at-least-once channels, so no dead letters: "
                "set 'at_least_once' in its CONFIG"
            )
        pattern = options["channel"]
        action = options["action"]
        try:
            if action == "list":
                self._list(layer.dead_letters(pattern), options["limit"])
            elif action == "requeue":
                moved = layer.requeue_dead_letters(pattern)
                self.stdout.write(f"Requeued {_plural(moved)}.")
            else:
                gone = layer.purge_dead_letters(pattern)
                self.stdout.write(f"Purged {_plural(gone)}.")
        except CommandError:
            raise
        except Exception as error:  # a layer outage: one line, no traceback
            raise CommandError(f"Cannot read channel layer {alias!r}: {error}") from error

    def _list(self, letters: list[Any], limit: int) -> None:
        for letter in letters[:limit]:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(letter.dead_at))
            content = repr(letter.content)
            if len(content) > 200:
                content = content[:197] + "..."
            self.stdout.write(
                f"{letter.channel}  {letter.deliveries} deliveries  {when}  {content}"
            )
        hidden = len(letters) - limit
        if hidden > 0:
            self.stdout.write(f"… and {hidden} more")
        self.stdout.write(f"{_plural(len(letters))}.")
