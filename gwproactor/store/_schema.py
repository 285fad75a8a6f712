"""Opening the store's database: pragmas, schema, corruption checks, moving a bad file aside.

Thread: every function here runs in the store's writer thread, the only thread that
touches the connection it opens.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

from gwproactor.errors import StoreError
from gwproactor.store._ops import Counts, OpenReport
from gwproactor.store._pattern import register_sql_function
from gwproactor.store._settings import StoreSettings

if TYPE_CHECKING:
    from gwproactor.store._salvage import Salvage

__all__ = ("count_events", "open_database", "suppress_sqlite_errors")

logger = logging.getLogger("gwproactor.store")  # public name: the modules are private

APPLICATION_ID: Final = 0x47575052  # "GWPR": tells our files from other sqlite files
SCHEMA_VERSION: Final = 4
_CORRUPTION_CODES: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

# AUTOINCREMENT, not a plain rowid alias: a plain rowid reuses max(seq)+1 once the newest
# rows are acked, and seq must never repeat, even after the store has been emptied.
# (event_id, pending) is unique so a middle gateway may archive a child's event and also
# forward it upstream as its own pending event under the same id.
# ``deliver_to`` (version 2): on an archived event still owed to an actor, the actor's name
# ("" routes by type); NULL once the actor has returned from it (or nobody wanted it).
_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        type_name TEXT NOT NULL,
        time_ns INTEGER NOT NULL,
        src TEXT NOT NULL,
        payload BLOB NOT NULL,
        pending INTEGER NOT NULL,
        nbytes INTEGER NOT NULL,
        deliver_to TEXT
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events(event_id, pending)",
    # Covers backlog reads and oldest-first eviction without touching the table rows.
    "CREATE INDEX IF NOT EXISTS events_pending_seq ON events(pending, seq, nbytes)",
    # Version 4: partial, archived events only. A pending event is written, uploaded and
    # deleted by seq: two index pages fewer per event written to flash (queries over
    # pending events use events_pending_seq; see query_reader).
    "CREATE INDEX IF NOT EXISTS events_type_time ON events(type_name, time_ns) WHERE pending = 0",
    "CREATE INDEX IF NOT EXISTS events_time ON events(time_ns) WHERE pending = 0",
    # Partial: holds only the few events owed to an actor (those in flight at a crash).
    "CREATE INDEX IF NOT EXISTS events_undelivered ON events(seq) WHERE deliver_to IS NOT NULL",
    # Version 3. Failed upload attempts, only for pending events whose ack timed out (a
    # healthy event never gets a row here: no write per event).
    """CREATE TABLE IF NOT EXISTS delivery_attempts (
        event_id TEXT PRIMARY KEY,
        attempts INTEGER NOT NULL
    ) WITHOUT ROWID""",
    # Pending events taken out of the upload after max_delivery_attempts (poison events).
    """CREATE TABLE IF NOT EXISTS dead_letters (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        type_name TEXT NOT NULL,
        time_ns INTEGER NOT NULL,
        src TEXT NOT NULL,
        payload BLOB NOT NULL,
        nbytes INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        dead_at_ns INTEGER NOT NULL
    )""",
)

# Upgrades from each older version, applied in order inside the schema transaction.
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: ("ALTER TABLE events ADD COLUMN deliver_to TEXT",),
    # The type and time indexes become partial (archived events only); _SCHEMA recreates
    # them.
    3: ("DROP INDEX IF EXISTS events_type_time", "DROP INDEX IF EXISTS events_time"),
}


class _CorruptError(Exception):
    """The file is not a usable store and must be moved aside (never leaves this module)."""


def open_database(path: Path, settings: StoreSettings) -> tuple[sqlite3.Connection, OpenReport]:
    """Open (creating if needed) the store at ``path``.

    A corrupt file (not a database, malformed, failing ``quick_check``, or another
    program's sqlite file) is salvaged: every row that can still be read is copied into a
    fresh store (see :mod:`gwproactor.store._salvage`), built beside it as
    ``<name>.salvage``; then the damaged file is renamed to ``<name>.corrupt-<UTC time>``
    with its -wal/-shm and the fresh one takes its place (a crash in between leaves either
    the damaged store, salvaged again at the next start, or the fresh one).
    ``OpenReport.corrupt_detail`` says what happened, with the counts saved and lost.

    A ``-shm`` file without its ``-wal`` means the WAL was deleted or moved while the
    gateway was not running: whatever it held since the last checkpoint is gone. That is
    reported in ``OpenReport.warnings``.

    Raises:
        StoreError: the store cannot be opened for another reason (directory not
            creatable, permissions, locked, written by a newer schema), or the fresh
            store cannot be created either. Nothing is left open.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory of the event store {path}: {exc}") from exc
    warnings = _wal_warnings(path)
    try:
        conn, counts = _try_open(path, settings)
        return conn, OpenReport(counts=counts, warnings=warnings)
    except _CorruptError as corrupt:
        reason = str(corrupt)
    salvage = _salvage(path, settings)
    aside = _move_aside(path)
    fresh = path.with_name(path.name + _SALVAGE_SUFFIX)
    if fresh.exists():
        try:
            os.replace(fresh, path)
        except OSError as exc:
            raise StoreError(f"cannot put the salvaged event store in place: {exc}") from exc
    lost = "an unknown number" if salvage.lost is None else str(salvage.lost)
    detail = (
        f"event store {path} is damaged ({reason}); saved {salvage.saved} rows into a fresh "
        f"store, {lost} events lost; the damaged file is kept as {aside.name}"
    )
    logger.error("%s", detail)
    try:
        conn, counts = _try_open(path, settings)
    except _CorruptError as corrupt:
        raise StoreError(f"fresh event store {path} is unusable: {corrupt}") from corrupt
    return conn, OpenReport(
        counts=counts,
        corrupt_detail=detail,
        salvaged=salvage.saved,
        lost=salvage.lost,
        warnings=warnings,
    )


_SALVAGE_SUFFIX: Final = ".salvage"


def _salvage(path: Path, settings: StoreSettings) -> Salvage:
    """Build ``<name>.salvage`` from what can be read of the damaged ``path``; on failure
    no salvage file is left and nothing is saved."""
    # Imported only when a store is damaged (start-up time and memory).
    from gwproactor.store._salvage import FreshStoreError, Salvage, salvage_into

    fresh = path.with_name(path.name + _SALVAGE_SUFFIX)
    _remove_with_companions(fresh)
    try:
        conn, _ = _try_open(fresh, settings)
    except (_CorruptError, StoreError) as exc:
        logger.warning("event store %s: cannot create a store to salvage into: %s", path, exc)
        _remove_with_companions(fresh)
        return Salvage(0, None)
    try:
        salvage = salvage_into(path, conn)
    except (sqlite3.Error, FreshStoreError) as exc:  # the fresh store failed: save nothing
        logger.warning("event store %s: salvage failed: %s", path, exc)
        with suppress_sqlite_errors("closing the salvage store"):
            conn.close()
        _remove_with_companions(fresh)
        return Salvage(0, None)
    with suppress_sqlite_errors("closing the salvage store"):
        conn.close()  # checkpoints: the fresh store is one self-contained file
    return salvage


def _remove_with_companions(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _wal_warnings(path: Path) -> list[str]:
    shm = path.with_name(path.name + "-shm")
    wal = path.with_name(path.name + "-wal")
    if path.exists() and shm.exists() and not wal.exists():
        return [
            f"{shm.name} exists without {wal.name}: the write-ahead log was deleted or moved "
            "while the gateway was down; commits made since its last checkpoint are lost "
            "(copy or move a store as all three files, or stop the gateway first)"
        ]
    return []


def _try_open(path: Path, settings: StoreSettings) -> tuple[sqlite3.Connection, Counts]:
    """Inspect, then open, configure and initialise; leaves nothing open if anything fails.

    Raises:
        _CorruptError: see :func:`open_database`.
        StoreError: any other failure.
    """
    if path.exists():
        # Inspect through a read-only connection: closing a read-write one checkpoints the
        # WAL into the file and deletes the -wal/-shm, destroying the evidence of a corrupt
        # store; and a foreign sqlite file must not be switched to WAL by us.
        inspector = _connect(path, settings, read_only=True)
        with _closed_on_failure(inspector, path):
            _check_identity(inspector, path)
            if settings.quick_check_on_start:
                _quick_check(inspector)
        inspector.close()
    conn = _connect(path, settings, read_only=False)
    with _closed_on_failure(conn, path):
        _configure(conn, path, settings)
        conn.execute("BEGIN IMMEDIATE")
        _migrate(conn)
        for statement in _SCHEMA:  # IF NOT EXISTS: nothing written for what is there
            conn.execute(statement)
        _stamp(conn)
        conn.execute("COMMIT")  # writes nothing if nothing changed
        register_sql_function(conn)
        return conn, count_events(conn)
    raise AssertionError("unreachable: _closed_on_failure re-raises")  # pragma: no cover


def _stamp(conn: sqlite3.Connection) -> None:
    """Set ``application_id`` and ``user_version``, each only if it differs: setting either
    rewrites page 1 even to the value it holds, and every start of an unchanged store then
    wrote a WAL frame (3 fdatasyncs) and checkpointed it at stop (2 more, and the file's
    header rewritten): flash wear on a device that restarts often."""
    for name, value in (("application_id", APPLICATION_ID), ("user_version", SCHEMA_VERSION)):
        (current,) = conn.execute(f"PRAGMA {name}").fetchone()
        if current != value:
            conn.execute(f"PRAGMA {name} = {value}")


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a store written by an older gwproactor up to :data:`SCHEMA_VERSION` (inside
    the open schema transaction: a failed upgrade leaves the file as it was)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    (has_events,) = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'"
    ).fetchone()
    if not has_events:
        return  # a new store: _SCHEMA creates the current shape
    for old in range(version, SCHEMA_VERSION):
        for statement in _MIGRATIONS.get(old, ()):
            conn.execute(statement)
        if old in _MIGRATIONS:
            logger.info("event store: schema upgraded from version %d to %d", old, old + 1)


def _connect(path: Path, settings: StoreSettings, *, read_only: bool) -> sqlite3.Connection:
    # A URI, percent-encoded by as_uri(), so that '?' or '#' in a path stay literal.
    uri = path.resolve().as_uri() + ("?mode=ro" if read_only else "?mode=rwc")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_seconds * 1000)}")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the event store {path}: {exc}") from exc
    return conn


@contextmanager
def _closed_on_failure(conn: sqlite3.Connection, path: Path) -> Iterator[None]:
    """Close ``conn`` if the block fails; translate sqlite errors to corrupt / StoreError."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        with suppress_sqlite_errors("closing a store that failed to open"):
            conn.close()
        if exc.sqlite_errorcode & 0xFF in _CORRUPTION_CODES:
            raise _CorruptError(f"{exc.sqlite_errorname}: {exc}") from exc
        raise StoreError(f"cannot open the event store {path}: {exc}") from exc
    except BaseException:
        with suppress_sqlite_errors("closing a store that failed to open"):
            conn.close()
        raise


def _configure(conn: sqlite3.Connection, path: Path, settings: StoreSettings) -> None:
    # Only a new (empty) file takes it; before journal_mode, which writes the first page.
    conn.execute(f"PRAGMA page_size = {settings.page_size}")
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode != "wal":
        raise StoreError(f"event store {path}: sqlite refused WAL mode (got {mode!r})")
    conn.execute(f"PRAGMA synchronous = {settings.durability.upper()}")
    conn.execute(f"PRAGMA wal_autocheckpoint = {settings.wal_autocheckpoint_pages}")
    if settings.max_file_bytes is not None:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        conn.execute(f"PRAGMA max_page_count = {max(1, settings.max_file_bytes // page_size)}")


def _check_identity(conn: sqlite3.Connection, path: Path) -> None:
    # The first statement that reads the file: a garbage file fails here with NOTADB.
    (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    (objects,) = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchone()
    if app_id != APPLICATION_ID and objects:
        raise _CorruptError(f"not a gwproactor event store (application_id {app_id:#x})")
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        # Written by a newer gwproactor: refuse rather than move a healthy store aside.
        raise StoreError(
            f"event store {path} has schema version {version}; this gwproactor reads up "
            f"to {SCHEMA_VERSION}"
        )


def _quick_check(conn: sqlite3.Connection) -> None:
    rows = conn.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        raise _CorruptError("quick_check: " + "; ".join(str(r[0]) for r in rows[:3]))


def count_events(conn: sqlite3.Connection) -> Counts:
    """Count pending and archived events and their bytes (a full index scan), and the
    dead letters."""
    counts = Counts()
    (counts.dead_letter_count,) = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    rows = conn.execute(
        "SELECT pending, count(*), coalesce(sum(nbytes), 0) FROM events GROUP BY pending"
    )
    for pending, count, nbytes in rows:
        if pending:
            counts.pending_count, counts.pending_bytes = count, nbytes
        else:
            counts.archive_count, counts.archive_bytes = count, nbytes
    return counts


def _move_aside(path: Path) -> Path:
    """Rename the database and its -wal/-shm to ``<name>.corrupt-<UTC time>[-wal|-shm]``.

    The suffixes stay last so that sqlite can open the moved set for forensics.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        for suffix in ("", "-wal", "-shm"):
            src = path.with_name(path.name + suffix)
            if src.exists():
                os.replace(src, aside.with_name(aside.name + suffix))
    except OSError as exc:
        raise StoreError(f"cannot move the corrupt event store {path} aside: {exc}") from exc
    return aside


class suppress_sqlite_errors:  # lower case: used like contextlib.suppress
    """Log, do not raise, an sqlite error in cleanup: a second error must not mask the
    first or kill the writer thread."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is not None and isinstance(exc, sqlite3.Error):
            logger.warning("event store: %s failed: %s", self._what, exc)
            return True
        return False
