"""``manage.py channelstatus``: what a channel layer holds right now (issue 18).

Prints `channels.layers.inspect.snapshot` of one layer: per channel family the
queue depth and the age of the oldest waiting message, the drops the layer
counted by reason, the groups (count and the largest of a bounded sample) and
dead letters. ``--watch`` reprints every ``--interval`` seconds until Ctrl-C
(``--count N`` stops after N readings).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from django.core.management import BaseCommand, CommandError

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers.inspect import LayerSnapshot, UninspectableLayer, snapshot
from channels.management.commands.runworker import add_layer_argument, load_layer

__all__ = ["Command", "render"]

# ANSI: cursor home and clear screen, between --watch readings on a terminal.
_CLEAR = "\033[H\033[2J"


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def render(alias: str, snap: LayerSnapshot, groups_shown: int = 10) -> str:
    """The text `channelstatus` prints for one reading."""
    taken = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snap.taken_at))
    lines = [f"Channel layer {alias!r}: {snap.layer}   {taken}", ""]
    if snap.families:
        width = max(len("CHANNEL FAMILY"), *(len(family) for family in snap.families))
        lines.append(f"{'CHANNEL FAMILY':<{width}}  {'DEPTH':>7}  {'CHANNELS':>8}  OLDEST")
        for stats in snap.families.values():
            lines.append(
                f"{stats.family:<{width}}  {stats.depth:>7}  {stats.channels:>8}  "
                f"{_age(stats.oldest_age)}"
            )
        lines.append(f"{'(total)':<{width}}  {snap.depth:>7}")
    else:
        lines.append("No messages waiting.")
    if snap.truncated:
        lines.append("(partial: the read stopped at its key bound; more channels exist)")
    lines.append("")
    if snap.drops:
        drops = "  ".join(f"{reason} {count}" for reason, count in sorted(snap.drops.items()))
    else:
        drops = "n/a (this layer keeps no statistics)"
    lines.append(f"Drops:         {drops}")
    if snap.group_count is None:
        lines.append("Groups:        n/a")
    else:
        lines.append(f"Groups:        {snap.group_count}")
        for group, size in list(snap.group_sizes.items())[:groups_shown]:
            lines.append(f"  {group:<40} {size:>6} member{'' if size == 1 else 's'}")
        hidden = snap.group_count - min(groups_shown, len(snap.group_sizes))
        if hidden > 0:
            lines.append(f"  … and {hidden} more")
    dead = "n/a" if snap.dead_letters is None else str(snap.dead_letters)
    lines.append(f"Dead letters:  {dead}")
    for family, count in snap.dead_letter_families.items():  # issue 17
        lines.append(f"  {family:<40} {count:>6}")
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = "Shows the channel layer's queue depths, oldest message ages, drops and groups."

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        add_layer_argument(parser)
        parser.add_argument(
            "--watch", action="store_true", help="Refresh every --interval seconds until Ctrl-C."
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=2.0,
            help="Seconds between readings with --watch (default 2).",
        )
        parser.add_argument(
            "--count",
            type=int,
            default=None,
            help="With --watch, stop after this many readings.",
        )
        parser.add_argument(
            "--groups",
            type=int,
            default=10,
            help="Largest groups to list (default 10).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options.get("layer", DEFAULT_CHANNEL_LAYER)
        layer = load_layer(alias)
        interval = options["interval"]
        if interval <= 0:
            raise CommandError(f"--interval must be positive, not {interval}")
        count = options["count"]
        if count is not None and count < 1:
            raise CommandError(f"--count must be at least 1, not {count}")
        if not options["watch"]:
            self.stdout.write(render(alias, self.read(layer, alias), options["groups"]), ending="")
            return
        clear = _is_terminal(self.stdout)
        pause = threading.Event()
        readings = 0
        try:
            while count is None or readings < count:
                if readings:
                    pause.wait(interval)
                try:
                    text = render(alias, self.read(layer, alias), options["groups"])
                except CommandError as error:  # a layer outage: keep watching
                    text = f"{error}\n"
                self.stdout.write((_CLEAR if clear else "") + text, ending="")
                self.stdout.flush()
                readings += 1
        except KeyboardInterrupt:
            pass

    @staticmethod
    def read(layer: Any, alias: str) -> LayerSnapshot:
        try:
            return snapshot(layer)
        except UninspectableLayer as error:
            raise CommandError(str(error)) from error
        except Exception as error:  # any backend failure (L-62): one line, no traceback
            raise CommandError(f"Cannot read channel layer {alias!r}: {error}") from error


def _is_terminal(stream: Any) -> bool:
    target: TextIO = getattr(stream, "_out", stream)
    return target is sys.stdout and sys.stdout.isatty()
