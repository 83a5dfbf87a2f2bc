"""``manage.py runworker``: run consumers from a cross-process channel layer (C-77)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import BaseCommand, CommandError

from channels import DEFAULT_CHANNEL_LAYER
from channels.asgi import InvalidChannelLayerError, channel_layers
from channels.layers.collector import LayerCollector
from channels.log import setup_logger
from channels.metrics import WorkerMetrics
from channels.metrics_http import (
    DEFAULT_METRICS_HOST,
    MetricsListenFailed,
    MetricsServer,
    serve_metrics,
    worker_ready,
)
from channels.signals import worker_process_ready
from channels.staticfiles import StaticFilesConsumer
from channels.worker import Worker, WorkerGroup

LOCAL_ONLY_ERROR = (
    "You cannot span multiple processes with the in-memory layer. "
    "Change your settings to use a cross-process channel layer."
)


def load_layer(alias: str) -> Any:
    """The wrapper for `alias`; bad settings become a one-line CommandError (C-88)."""
    try:
        return channel_layers[alias]
    except KeyError:
        raise CommandError(f"No channel layer {alias!r} in the CHANNEL_LAYERS setting")
    except (InvalidChannelLayerError, ImproperlyConfigured) as error:
        raise CommandError(str(error)) from error


def add_layer_argument(parser: Any) -> None:
    """``--layer ALIAS``, shared by runworker and rundelay (C-75, C-77)."""
    parser.add_argument(
        "--layer",
        action="store",
        dest="layer",
        default=DEFAULT_CHANNEL_LAYER,
        help="Channel layer alias to use, if not the default.",
    )


class Command(BaseCommand):
    help = "Runs a Channels worker that handles messages from the channel layer."

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        add_layer_argument(parser)
        parser.add_argument(
            "--only-channels",
            action="append",
            dest="only_channels",
            help="Limits this worker to only listening on the provided channels (globs).",
        )
        parser.add_argument(
            "--exclude-channels",
            action="append",
            dest="exclude_channels",
            help="Prevents this worker from listening on the provided channels (globs).",
        )
        parser.add_argument(
            "--threads",
            action="store",
            dest="threads",
            default=1,
            type=int,
            help="Number of threads to execute.",
        )
        parser.add_argument(
            "--metrics-port",
            action="store",
            dest="metrics_port",
            default=None,
            type=int,
            metavar="PORT",
            help="Serve Prometheus metrics, /healthz and /readyz on this port (one per "
            "process, whatever --threads).",
        )
        parser.add_argument(
            "--metrics-host",
            action="store",
            dest="metrics_host",
            default=DEFAULT_METRICS_HOST,
            metavar="HOST",
            help=f"The address the metrics port listens on (default {DEFAULT_METRICS_HOST}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options.get("verbosity", 1)
        self.logger = setup_logger("django.channels", self.verbosity)
        self.channel_layer = load_layer(options.get("layer", DEFAULT_CHANNEL_LAYER))
        if self.channel_layer.local_only():
            raise CommandError(LOCAL_ONLY_ERROR)
        if settings.DEBUG and apps.is_installed("django.contrib.staticfiles"):
            self.channel_layer.router.check_default(http_consumer=StaticFilesConsumer())
        else:
            self.channel_layer.router.check_default()
        self.n_threads = options.get("threads", 1)
        if self.n_threads < 1:
            # 1.x ran one worker; stricter than that would be a difference 1.x code sees.
            self.stderr.write(f"--threads {self.n_threads} is less than 1: running 1 thread")
            self.n_threads = 1
        self.logger.info(
            "Running worker against channel layer %s (%d thread%s)",
            self.channel_layer,
            self.n_threads,
            "" if self.n_threads == 1 else "s",
        )
        worker_kwargs = {
            "channel_layer": self.channel_layer,
            "callback": self.consumer_called if self.verbosity > 1 else None,
            "only_channels": options.get("only_channels"),
            "exclude_channels": options.get("exclude_channels"),
        }
        if self.n_threads == 1:
            worker = Worker(**worker_kwargs)
        else:
            worker = WorkerGroup(n_threads=self.n_threads, **worker_kwargs)
        if not worker.apply_channel_filters(self.channel_layer.router.channels):
            raise CommandError(
                "No channels to listen on: --only-channels/--exclude-channels exclude "
                f"every routed channel ({', '.join(sorted(self.channel_layer.router.channels))})"
            )
        endpoint = self.serve_metrics(worker, options)
        try:
            worker_process_ready.send(sender=worker)
            worker.ready()
            worker.run()
        except KeyboardInterrupt:
            pass
        finally:
            if endpoint is not None:
                endpoint.close()

    def serve_metrics(self, worker: Worker, options: dict[str, Any]) -> MetricsServer | None:
        """Issue 18: one `WorkerMetrics` for every thread's worker, the layer's families
        read at scrape time, and the process's one metrics endpoint."""
        port = options.get("metrics_port")
        if port is None:
            return None
        if not 0 <= port <= 65535:
            raise CommandError(f"--metrics-port must be a TCP port (0..65535), not {port}")
        metrics = WorkerMetrics()
        alias = getattr(self.channel_layer, "alias", None)
        metrics.registry.register(
            LayerCollector(self.channel_layer, alias=alias if isinstance(alias, str) else "default")
        )
        host = options.get("metrics_host") or DEFAULT_METRICS_HOST
        try:
            endpoint = serve_metrics(metrics.registry, worker_ready(worker), port, host)
        except MetricsListenFailed as error:
            raise CommandError(error.strerror or str(error)) from error
        for each in (worker, *getattr(worker, "workers", ())):
            each.metrics = metrics
        self.logger.info("Serving metrics on http://%s:%d/metrics", host, endpoint.port)
        return endpoint

    def consumer_called(self, channel: str, message: Any) -> None:
        self.logger.debug("%s", channel)
