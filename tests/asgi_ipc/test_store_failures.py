"""A store that fails under the layer raises `StoreUnavailable` (issue 16 item 5, L-56).

It is the layer's ``Unavailable`` (`channels.layers.base.LayerUnavailable`, an
``OSError``), with SQLite's or the OS's error as its cause; the caller's own
mistakes stay usage errors. The failure is real: the store's database files are
overwritten under an open layer, as a stray process or a broken tmpfs would.
"""

from __future__ import annotations

import os
import sqlite3

import pytest

from asgi_ipc import IPCChannelLayer
from asgi_ipc.store import StoreUnavailable, store_directory, store_failure
from channels.layers.base import InvalidChannelName, LayerUnavailable, LayerUsageError

from .helpers import remove_store, unique_prefix


@pytest.fixture
def prefix():
    name = unique_prefix("failures")
    yield name
    remove_store(name)


def _clobber(prefix: str) -> None:
    """Overwrite every database file of `prefix` with bytes that are no SQLite file."""
    base = os.path.join(store_directory(), f"{prefix}-messages")
    for path in (base, base + "-wal", base + "-shm"):
        if os.path.exists(path):
            with open(path, "r+b") as file:
                file.write(b"\xff" * max(os.path.getsize(path), 4096))


def test_a_clobbered_store_raises_unavailable(prefix):
    layer = IPCChannelLayer(prefix=prefix)
    layer.send("a", {"n": 1})
    _clobber(prefix)
    for call in (
        lambda: layer.send("a", {"n": 2}),
        lambda: layer.receive(["a"]),
        lambda: layer.group_add("g", "a"),
        lambda: layer.flush(),
    ):
        with pytest.raises(layer.Unavailable) as caught:
            call()
        error = caught.value
        assert isinstance(error, StoreUnavailable)
        assert isinstance(error, LayerUnavailable) and isinstance(error, OSError)
        assert isinstance(error.__cause__, sqlite3.DatabaseError)
        assert prefix in str(error)
    # Usage errors are still checked first, and are no outage.
    with pytest.raises(InvalidChannelName):
        layer.send("a b", {})


def test_store_failure_sorts_outages_from_bugs():
    where = "/dev/shm/x"
    locked = store_failure(sqlite3.OperationalError("database is locked"), where)
    assert isinstance(locked, StoreUnavailable) and where in str(locked)
    full = store_failure(OSError(28, "No space left on device"), where)
    assert isinstance(full, StoreUnavailable) and full.errno == 28
    for bug in (
        sqlite3.IntegrityError("UNIQUE constraint failed"),
        sqlite3.ProgrammingError("Cannot operate on a closed database."),
        ValueError("not a store error"),
        StoreUnavailable("already translated"),
    ):
        assert store_failure(bug, where) is None
    assert not issubclass(StoreUnavailable, LayerUsageError)
