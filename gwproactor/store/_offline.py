"""Offline store maintenance (``gwproactor store``): plain sqlite on the store's file, no
writer thread and no loop.

Reads (:func:`store_stats`, :func:`export_rows`, :func:`dead_letters`) use a read-only
connection and never change the file; they may run next to a running gateway (WAL lets a
reader in). Writes (:func:`retry_dead_letter`, :func:`drop_dead_letter`) open the store as
the gateway does (upgrading an older schema) and are meant for a stopped gateway: a running
one would not see the change in its counts until it restarts.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gwproactor.errors import StoreError
from gwproactor.store._schema import open_database
from gwproactor.store._settings import StoreSettings

__all__ = (
    "dead_letters",
    "drop_dead_letter",
    "export_rows",
    "read_only",
    "retry_dead_letter",
    "store_stats",
)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the store at ``path``. Raises StoreError if there is no
    store there or it cannot be read."""
    if not path.is_file():
        raise StoreError(f"no event store at {path}")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the event store {path}: {exc}") from exc
    try:
        yield conn
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read the event store {path}: {exc}") from exc
    finally:
        conn.close()


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return bool(row[0])


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))


def store_stats(conn: sqlite3.Connection, path: Path) -> dict[str, Any]:
    """Counts, bytes and file sizes of a store (read-only)."""
    out: dict[str, Any] = {"path": str(path)}
    for suffix in ("", "-wal", "-shm"):
        file = path.with_name(path.name + suffix)
        out[f"file{suffix.replace('-', '_')}_bytes"] = (
            file.stat().st_size if file.exists() else None
        )
    (out["schema_version"],) = conn.execute("PRAGMA user_version").fetchone()
    (out["page_size"],) = conn.execute("PRAGMA page_size").fetchone()
    (out["freelist_pages"],) = conn.execute("PRAGMA freelist_count").fetchone()
    for pending, label in ((1, "pending"), (0, "archived")):
        count, nbytes, oldest, newest = conn.execute(
            "SELECT count(*), coalesce(sum(nbytes), 0), min(time_ns), max(time_ns) "
            "FROM events WHERE pending = ?",
            (pending,),
        ).fetchone()
        out[label] = {
            "count": count,
            "bytes": nbytes,
            "oldest_time_ns": oldest,
            "newest_time_ns": newest,
        }
    owed = 0
    if _has_column(conn, "events", "deliver_to"):
        (owed,) = conn.execute(
            "SELECT count(*) FROM events WHERE deliver_to IS NOT NULL"
        ).fetchone()
    out["owed_to_actors"] = owed
    dead = retrying = 0
    if _has_table(conn, "dead_letters"):
        (dead,) = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
        (retrying,) = conn.execute("SELECT count(*) FROM delivery_attempts").fetchone()
    out["dead_letters"] = dead
    out["events_with_failed_attempts"] = retrying
    return out


def _payload_json(payload: bytes) -> Any:
    """The payload as JSON if it is JSON (the usual case), else ``{"base64": ...}``."""
    try:
        return json.loads(payload)
    except ValueError:
        return {"base64": base64.b64encode(payload).decode()}


def export_rows(conn: sqlite3.Connection, which: str = "all") -> Iterator[dict[str, Any]]:
    """Every event (``which``: all, pending, archived, dead), oldest first, as JSON-ready
    dicts with a ``state`` of pending, archived or dead_letter."""
    if which in ("all", "pending", "archived"):
        where = {"all": "1", "pending": "pending = 1", "archived": "pending = 0"}[which]
        rows = conn.execute(
            "SELECT seq, event_id, type_name, time_ns, src, pending, payload FROM events "  # noqa: S608 - constant text
            f"WHERE {where} ORDER BY seq"
        )
        for seq, event_id, type_name, time_ns, src, pending, payload in rows:
            yield {
                "seq": seq,
                "event_id": event_id,
                "type_name": type_name,
                "time_ns": time_ns,
                "src": src,
                "state": "pending" if pending else "archived",
                "payload": _payload_json(payload),
            }
    if which in ("all", "dead"):
        yield from dead_letters(conn, with_payload=True)


def dead_letters(conn: sqlite3.Connection, *, with_payload: bool = False) -> list[dict[str, Any]]:
    """The dead letters, oldest first."""
    if not _has_table(conn, "dead_letters"):
        return []
    out = []
    rows = conn.execute(
        "SELECT seq, event_id, type_name, time_ns, src, attempts, dead_at_ns, payload "
        "FROM dead_letters ORDER BY seq"
    )
    for seq, event_id, type_name, time_ns, src, attempts, dead_at_ns, payload in rows:
        letter: dict[str, Any] = {
            "seq": seq,
            "event_id": event_id,
            "type_name": type_name,
            "time_ns": time_ns,
            "src": src,
            "state": "dead_letter",
            "attempts": attempts,
            "dead_at_ns": dead_at_ns,
        }
        if with_payload:
            letter["payload"] = _payload_json(payload)
        out.append(letter)
    return out


def _writable(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise StoreError(f"no event store at {path}")
    conn, report = open_database(path, StoreSettings(quick_check_on_start=False))
    if report.corrupt_detail is not None:
        conn.close()
        raise StoreError(report.corrupt_detail)
    return conn


def retry_dead_letter(path: Path, event_id: str) -> bool:
    """Put the dead letter ``event_id`` back at the end of the upload queue (a new seq, its
    attempts forgotten). False if there is no such dead letter. Raises StoreError."""
    conn = _writable(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(
            "INSERT OR IGNORE INTO events "
            "(event_id, type_name, time_ns, src, payload, pending, nbytes) "
            "SELECT event_id, type_name, time_ns, src, payload, 1, nbytes FROM dead_letters "
            "WHERE event_id = ?",
            (event_id,),
        )
        moved = cur.rowcount > 0
        conn.execute("DELETE FROM dead_letters WHERE event_id = ?", (event_id,))
        conn.execute("DELETE FROM delivery_attempts WHERE event_id = ?", (event_id,))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"retry {event_id!r} in {path} failed: {exc}") from exc
    finally:
        conn.close()
    return moved


def drop_dead_letter(path: Path, event_id: str) -> bool:
    """Delete the dead letter ``event_id`` for good. False if there is none. Raises
    StoreError."""
    conn = _writable(path)
    try:
        cur = conn.execute("DELETE FROM dead_letters WHERE event_id = ?", (event_id,))
    except sqlite3.Error as exc:
        raise StoreError(f"drop {event_id!r} in {path} failed: {exc}") from exc
    finally:
        conn.close()
    return cur.rowcount > 0
