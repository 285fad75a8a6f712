"""Saving what can be read from a damaged store before it is set aside.

Thread: runs in the store's writer thread while it opens the database (nothing else has
the files open).

A damaged page usually costs a few rows, or nothing at all when it belongs to an index:
the table itself is read with ``NOT INDEXED`` (so no index is trusted), in ``seq`` order,
row by row; a read error skips ahead past the damaged part and goes on. Every row read is
copied into a fresh store (same ``seq``, so the upload order and the AUTOINCREMENT counter
survive); the dead letters too. Events lost = what a count of the damaged file says minus
what was saved (unknown if nothing can count them).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ("FreshStoreError", "Salvage", "salvage_into")

logger = logging.getLogger("gwproactor.store")  # public name: the modules are private

_EVENT_COLUMNS: Final = (
    "seq",
    "event_id",
    "type_name",
    "time_ns",
    "src",
    "payload",
    "pending",
    "nbytes",
    "deliver_to",
)
_DEAD_COLUMNS: Final = (
    "seq",
    "event_id",
    "type_name",
    "time_ns",
    "src",
    "payload",
    "nbytes",
    "attempts",
    "dead_at_ns",
)
_MAX_SKIPS: Final = 64  # damaged regions to jump over before giving up on the rest


class FreshStoreError(Exception):
    """Writing into the fresh store failed (disk full, say): the salvage is abandoned."""


@dataclass(frozen=True, slots=True)
class Salvage:
    saved: int
    """Events (and dead letters) copied into the fresh store."""
    lost: int | None
    """Events the damaged file counted but that could not be read; None: unknown."""


def salvage_into(damaged: Path, fresh: sqlite3.Connection) -> Salvage:
    """Copy every readable event and dead letter of ``damaged`` into ``fresh`` (an open,
    initialised store, in autocommit mode), in one transaction. Never raises for damage;
    raises FreshStoreError or sqlite3.Error if ``fresh`` fails."""

    try:
        source = sqlite3.connect(damaged.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        logger.warning("salvage: cannot open %s: %s", damaged, exc)
        return Salvage(0, None)
    try:
        expected = _count(source, "events")
        fresh.execute("BEGIN IMMEDIATE")
        saved = _copy(source, fresh, "events", _EVENT_COLUMNS)
        dead = _copy(source, fresh, "dead_letters", _DEAD_COLUMNS)
        fresh.execute("COMMIT")
    finally:
        source.close()
    lost = None if expected is None else max(0, expected - saved)
    return Salvage(saved + dead, lost)


def _columns(source: sqlite3.Connection, table: str, wanted: tuple[str, ...]) -> list[str]:
    try:
        present = {row[1] for row in source.execute(f"PRAGMA table_info({table})")}
    except sqlite3.DatabaseError:
        return []
    return [c for c in wanted if c in present]


def _count(source: sqlite3.Connection, table: str) -> int | None:
    """Rows in ``table`` by any means that works: its smallest index, else the table."""
    for sql in (f"SELECT count(*) FROM {table}", f"SELECT count(*) FROM {table} NOT INDEXED"):  # noqa: S608 - constant names
        try:
            return int(source.execute(sql).fetchone()[0])
        except sqlite3.DatabaseError:
            continue
    return None


def _copy(
    source: sqlite3.Connection, fresh: sqlite3.Connection, table: str, wanted: tuple[str, ...]
) -> int:
    columns = _columns(source, table, wanted)
    if "seq" not in columns:
        return 0
    names = ", ".join(columns)
    read = f"SELECT {names} FROM {table} NOT INDEXED WHERE seq > ? ORDER BY seq"  # noqa: S608 - constant names
    one = f"SELECT {names} FROM {table} NOT INDEXED WHERE seq = ?"  # noqa: S608 - constant names
    write = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
    top = _max_seq(source, table)
    saved = skips = 0
    last = 0  # the highest seq read (or skipped past)
    gap_from: int | None = None  # the last seq read before a damaged part
    step = 1
    while True:
        try:
            for row in source.execute(read, (last,)):
                if gap_from is not None:
                    # Jumped past the damage: the jump may have passed readable rows too.
                    saved += _probe(source, fresh, one, write, range(gap_from + 1, row[0]))
                    gap_from = None
                last, step = row[0], 1
                saved += _write(fresh, write, row)
        except sqlite3.DatabaseError as exc:
            skips += 1
            if gap_from is None:
                gap_from = last
            if skips > _MAX_SKIPS or (top is not None and last >= top):
                logger.warning("salvage: %s: giving up after seq %d: %s", table, last, exc)
                if top is not None and gap_from < top:
                    saved += _probe(source, fresh, one, write, range(gap_from + 1, top + 1))
                return saved
            # Jump over the damaged part, further each time it is still in the way.
            last += step
            step *= 2
        else:
            return saved


_MAX_PROBES: Final = 100_000  # single-row reads to fill one gap left by a jump


def _probe(
    source: sqlite3.Connection,
    fresh: sqlite3.Connection,
    one: str,
    write: str,
    seqs: range,
) -> int:
    """Read the rows of ``seqs`` one by one (each fails alone if its page is damaged)."""
    saved = 0
    for seq in seqs[:_MAX_PROBES]:
        try:
            row = source.execute(one, (seq,)).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row is not None:
            saved += _write(fresh, write, row)
    return saved


def _write(fresh: sqlite3.Connection, write: str, row: tuple[object, ...]) -> int:
    try:
        return fresh.execute(write, row).rowcount
    except sqlite3.IntegrityError:
        return 0  # a row damaged into nonsense (a NULL where none may be)
    except sqlite3.Error as exc:  # the fresh store failed: not the source's damage
        raise FreshStoreError(str(exc)) from exc


def _max_seq(source: sqlite3.Connection, table: str) -> int | None:
    for sql in (
        "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
        f"SELECT max(seq) FROM {table}",  # noqa: S608 - constant name
    ):
        try:
            row = source.execute(sql).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row is not None and row[0] is not None:
            return int(row[0])
    return None
