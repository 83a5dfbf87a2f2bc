"""Signals around consumers and workers (C-27)."""

from django.db import close_old_connections
from django.dispatch import Signal

__all__ = ["consumer_finished", "consumer_started", "worker_process_ready", "worker_ready"]

# Sent with ``environ={}`` before each consumer runs.
consumer_started = Signal()
# Sent after each consumer, also when it raised.
consumer_finished = Signal()
# Sent by a Worker when its setup is done (sender = the worker).
worker_ready = Signal()
# Sent once per runworker process before `worker.ready()` (sender = the worker).
worker_process_ready = Signal()

# Consumers use the database like views do; give them the same connection hygiene.
consumer_finished.connect(close_old_connections)
