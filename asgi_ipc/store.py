"""Where an IPC layer keeps its state: two SQLite databases on tmpfs (L-56).

For a prefix ``P`` the store directory (``/dev/shm/asgi_ipc-{uid}`` on Linux,
the temp directory elsewhere) holds:

- ``P-messages``: the message queues, their byte total and the registry of
  blocked receivers;
- ``P-groups``: group memberships and their count;
- ``P-lock``: the lock file of `locks.ProcessLock`;
- ``P-wake-*``: one FIFO per blocked receiving thread (`wakeup`).

Why SQLite: its journal gives exactly the crash rule of L-56.6. A process
killed inside a transaction leaves a journal that the next connection rolls
back before it reads, so a half-written operation is never seen, and its
locks are ``fcntl`` locks the kernel releases on death. Every transaction
also holds the layer's own `ProcessLock`, so SQLite never meets a busy
database (its busy handler would sleep and retry, i.e. poll). The files sit
on tmpfs, so "synchronous = OFF" costs no safety: writes reach the shared
page cache before the transaction counts as committed, and only a machine
crash, which clears tmpfs anyway, could lose them.

Byte totals are kept by triggers in the same transaction as the rows they
count, so they can never disagree with the data, even after a crash.

A store that fails while a layer uses it (its lock, its database files, the
tmpfs under them, a wake-up pipe) raises `StoreUnavailable`, the layer's
``Unavailable`` (`channels.layers.base.LayerUnavailable`, an ``OSError``),
with the original error as its cause. SQLite errors that mean a bug in this
package (``IntegrityError``, ``ProgrammingError``, ...) are not translated.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Iterator

from channels.layers.base import LayerUnavailable

from .locks import ProcessLock, process_lock
from .wakeup import WAKE_INFIX, Waker, waker_pid

__all__ = [
    "SCHEMA_VERSION",
    "Store",
    "StoreUnavailable",
    "open_store",
    "store_directory",
    "valid_prefix",
]

logger = logging.getLogger(__name__)

# Bump whenever the tables change: a store with another version is reset (L-56.6).
SCHEMA_VERSION = 1
# Bytes a write-ahead log is truncated to after a checkpoint (L-56.4).
WAL_SIZE_LIMIT = 4 * 1024 * 1024

# Longest prefix in UTF-8 bytes: file names are `{prefix}-wake-{12 letters}`, kept far below
# the usual 255-byte limit.
_MAX_PREFIX_BYTES = 100

_MESSAGES_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,   -- grows with every insert: FIFO order per storage
    storage TEXT NOT NULL,    -- the channel name, or P! for P!L (A-17)
    deadline REAL NOT NULL,   -- wall-clock expiry time: shared by every process
    names TEXT NOT NULL,      -- space-separated recipients; several for a bundle (A-93)
    payload BLOB NOT NULL,    -- msgpack (L-6)
    size INTEGER NOT NULL     -- bytes charged to message_memory
);
CREATE INDEX IF NOT EXISTS messages_by_storage ON messages (storage, id);
CREATE INDEX IF NOT EXISTS messages_by_deadline ON messages (deadline);
CREATE TABLE IF NOT EXISTS message_usage (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO message_usage VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS messages_added AFTER INSERT ON messages BEGIN
    UPDATE message_usage SET bytes = bytes + NEW.size;
END;
CREATE TRIGGER IF NOT EXISTS messages_removed AFTER DELETE ON messages BEGIN
    UPDATE message_usage SET bytes = bytes - OLD.size;
END;
CREATE TRIGGER IF NOT EXISTS messages_resized AFTER UPDATE OF size ON messages BEGIN
    UPDATE message_usage SET bytes = bytes - OLD.size + NEW.size;
END;
CREATE TABLE IF NOT EXISTS waiters (
    storage TEXT NOT NULL,
    waiter TEXT NOT NULL,
    PRIMARY KEY (storage, waiter)
) WITHOUT ROWID;
"""

_GROUPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups.memberships (
    grp TEXT NOT NULL,
    channel TEXT NOT NULL,
    deadline REAL NOT NULL,
    PRIMARY KEY (grp, channel)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS groups.memberships_by_deadline ON memberships (deadline);
CREATE TABLE IF NOT EXISTS groups.group_usage (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    members INTEGER NOT NULL
);
INSERT OR IGNORE INTO groups.group_usage VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS groups.membership_added AFTER INSERT ON memberships BEGIN
    UPDATE group_usage SET members = members + 1;
END;
CREATE TRIGGER IF NOT EXISTS groups.membership_removed AFTER DELETE ON memberships BEGIN
    UPDATE group_usage SET members = members - 1;
END;
"""


class InvalidPrefix(ValueError):
    """The IPC prefix cannot name files (L-55)."""


class StoreUnavailable(LayerUnavailable):
    """The IPC layer's store failed (lock, database, tmpfs, wake-up pipe); see its cause.

    An ``OSError`` (through `LayerUnavailable`); ``errno`` is the cause's when
    the cause is an ``OSError``.
    """


# SQLite errors of the caller's making or of this package's: a bug, never an outage.
_SQLITE_BUGS = (
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
    sqlite3.NotSupportedError,
)


def store_failure(error: BaseException, where: str) -> StoreUnavailable | None:
    """`error` as a `StoreUnavailable` naming `where`, or None if it is no store failure."""
    if isinstance(error, (LayerUnavailable, *_SQLITE_BUGS)):
        return None
    if not isinstance(error, (OSError, sqlite3.DatabaseError)):
        return None
    failure = StoreUnavailable(f"The IPC layer store {where} failed: {error}")
    if isinstance(error, OSError):
        failure.errno = error.errno
    return failure


def valid_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
    # Any prefix a 1.x layer accepted (POSIX IPC names) works: only what cannot be part of
    # one file name is refused.
    too_long = len(os.fsencode(prefix)) > _MAX_PREFIX_BYTES
    if not prefix or "/" in prefix or "\x00" in prefix or too_long:
        raise InvalidPrefix(
            f"prefix {prefix!r} is invalid: it names files, so use 1-{_MAX_PREFIX_BYTES} bytes "
            "without '/' (e.g. 'asgi' or 'myproject')"
        )
    return prefix


def store_directory() -> str:
    """The per-user directory of all IPC stores, created with mode 0700 (L-56.11)."""
    base = None
    if sys.platform.startswith("linux") and os.access("/dev/shm", os.W_OK | os.X_OK):
        base = "/dev/shm"  # tmpfs: memory, not disk
    directory = os.path.join(base or tempfile.gettempdir(), f"asgi_ipc-{os.getuid()}")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.stat(directory).st_uid != os.getuid():
        raise PermissionError(
            f"{directory} belongs to another user; remove it so the IPC layer can create "
            "its own private directory"
        )
    return directory


class Store:
    """One process's connection to the databases of one prefix.

    Get it from `open_store`; every access goes through `transaction()`.
    """

    def __init__(self, directory: str, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix
        self.messages_path = os.path.join(directory, f"{prefix}-messages")
        self.groups_path = os.path.join(directory, f"{prefix}-groups")
        self.lock: ProcessLock = process_lock(os.path.join(directory, f"{prefix}-lock"))
        self._local = threading.local()
        self._connection: sqlite3.Connection | None = None
        with self.lock:
            self._connection = self._open()
            self._remove_stale_waiters()

    def waker(self) -> Waker:
        """This thread's FIFO for blocking receives, shared by its layer instances."""
        waker: Waker | None = getattr(self._local, "waker", None)
        if waker is None:
            try:
                waker = self._local.waker = Waker(self.directory, self.prefix)
            except OSError as error:
                failure = store_failure(error, self.directory)
                if failure is None:
                    raise
                raise failure from error
        return waker

    def close(self) -> None:
        """Close the connection under the lock.

        The last connection to close checkpoints the write-ahead log and removes
        it; doing that under the layer lock keeps it from colliding with another
        process's transaction (which would otherwise wait in SQLite's busy loop).
        """
        with self.lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the layer lock and run one SQLite transaction: all of it or none.

        A failure of the store raises `StoreUnavailable`.
        """
        try:
            with self.lock:
                connection = self._connection
                if connection is None:  # closed at exit, yet a daemon thread carries on
                    connection = self._connection = self._open()
                # IMMEDIATE, not deferred: a process SIGKILLed while holding the lock
                # gives up its locks one file at a time, so ours can be free while its
                # SQLite write lock on the -shm file is still held for a moment. Taking
                # the write lock at BEGIN lets SQLite's busy handler wait that out; a
                # deferred transaction upgrading from read to write would fail at once
                # with "database is locked" (L-56.6).
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
        except (OSError, sqlite3.DatabaseError) as error:
            failure = store_failure(error, self.messages_path)
            if failure is None:
                raise
            raise failure from error

    # -- opening (call with the lock held) --------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect_and_check()
        except sqlite3.DatabaseError as error:
            # L-56.6: only an unreadable store is reset, and never silently.
            logger.warning(
                "The IPC layer store %s is unreadable (%s); resetting it to empty",
                self.messages_path,
                error,
            )
            self._remove_files()
            return self._connect_and_check()

    def _connect_and_check(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.messages_path, isolation_level=None, check_same_thread=False, timeout=30
        )
        try:
            connection.execute("ATTACH DATABASE ? AS groups", (self.groups_path,))
            for database in ("main", "groups"):
                connection.execute(f"PRAGMA {database}.journal_mode = WAL")
                connection.execute(f"PRAGMA {database}.synchronous = OFF")
                # A checkpointed WAL is cut back to this size, so the files stay bounded.
                connection.execute(f"PRAGMA {database}.journal_size_limit = {WAL_SIZE_LIMIT}")
            self._check_version(connection)
            connection.executescript(_MESSAGES_SCHEMA + _GROUPS_SCHEMA)
            for database in ("main", "groups"):
                connection.execute(f"PRAGMA {database}.user_version = {SCHEMA_VERSION}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _check_version(self, connection: sqlite3.Connection) -> None:
        for database in ("main", "groups"):
            version = connection.execute(f"PRAGMA {database}.user_version").fetchone()[0]
            tables = connection.execute(
                f"SELECT count(*) FROM {database}.sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
            # Version 0 with tables: a creator died between the tables and the
            # version stamp; nobody can have stored data yet, so finish the job.
            if tables and version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(
                    f"schema version {version} in {database}, this code uses {SCHEMA_VERSION}"
                )

    def _remove_files(self) -> None:
        for path in (self.messages_path, self.groups_path):
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)

    def _remove_stale_waiters(self) -> None:
        """Drop FIFOs and registrations left by processes that died (SIGKILL)."""
        start = f"{self.prefix}{WAKE_INFIX}"
        for entry in os.listdir(self.directory):
            if entry.startswith(start):
                pid = waker_pid(entry[len(start) :])
                if pid is not None and not _alive(pid):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(self.directory, entry))
        connection = self._connection
        assert connection is not None  # opened by the caller, under the lock
        stale = [
            waiter
            for (waiter,) in connection.execute("SELECT DISTINCT waiter FROM waiters")
            if (pid := waker_pid(waiter)) is None or not _alive(pid)
        ]
        if stale:
            connection.executemany("DELETE FROM waiters WHERE waiter = ?", [(w,) for w in stale])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_registry_lock = threading.Lock()
_registry: dict[tuple[int, str, str], Store] = {}


@atexit.register
def _close_stores() -> None:
    with _registry_lock:
        mine = [store for (pid, _, _), store in _registry.items() if pid == os.getpid()]
        _registry.clear()
    for store in mine:
        store.close()


def open_store(prefix: str) -> Store:
    """The store of `prefix` for this process, shared by its layer instances.

    Keyed by process id: a forked child must not reuse its parent's SQLite
    connection, so it opens its own.
    """
    directory = store_directory()  # its PermissionError is a set-up problem, not an outage
    key = (os.getpid(), directory, prefix)
    with _registry_lock:
        store = _registry.get(key)
        if store is None:
            try:
                store = Store(directory, prefix)
            except (OSError, sqlite3.DatabaseError) as error:
                failure = store_failure(error, os.path.join(directory, prefix))
                if failure is None:
                    raise
                raise failure from error
            _registry[key] = store
        return store
