"""Fixtures shared by the channels tests."""

from __future__ import annotations

import logging
import threading

import pytest


class Records(logging.Handler):
    """Collects records of `django.channels` and lets a test wait for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.records.append(record)
            self.changed.notify_all()

    def messages(self, level: int | None = None) -> list[str]:
        return [r.getMessage() for r in self.records if level is None or r.levelno == level]

    def wait_for(self, text: str, timeout: float = 15) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: any(text in message for message in self.messages()), timeout
            )


@pytest.fixture
def records():
    handler = Records()
    logger = logging.getLogger("django.channels")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)
