"""Failed upload attempts and the dead letters (the writer thread's part).

Only pending events whose ack timed out get a ``delivery_attempts`` row, so a healthy
event costs no write here. Thread: the store's writer thread, inside its open transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Final

from gwproactor.store._model import DeadLetter, StoreStats
from gwproactor.store._ops import Counts

__all__ = ("count_failed_attempts",)

_COUNT_ATTEMPT: Final = (
    "INSERT INTO delivery_attempts (event_id, attempts) "
    "SELECT event_id, 1 FROM events WHERE event_id = ? AND pending = 1 "
    "ON CONFLICT (event_id) DO UPDATE SET attempts = attempts + 1 RETURNING attempts"
)
_TO_DEAD_LETTERS: Final = (
    "INSERT INTO dead_letters "
    "(seq, event_id, type_name, time_ns, src, payload, nbytes, attempts, dead_at_ns) "
    "SELECT seq, event_id, type_name, time_ns, src, payload, nbytes, ?, ? FROM events "
    "WHERE event_id = ? AND pending = 1 RETURNING type_name, nbytes, seq"
)
# Attempts of events that are no longer pending (acked, dropped) are forgotten.
_FORGET_ATTEMPTS: Final = (
    "DELETE FROM delivery_attempts WHERE event_id NOT IN "
    "(SELECT event_id FROM events WHERE pending = 1)"
)
_DELETE_SEQ: Final = "DELETE FROM events WHERE seq = ?"


def count_failed_attempts(
    cur: sqlite3.Cursor,
    event_ids: Sequence[str],
    max_attempts: int,
    counts: Counts,
    stats: StoreStats,
) -> list[DeadLetter]:
    """Count one more failed attempt for each pending event of ``event_ids``; move those
    at ``max_attempts`` to the dead letters (``counts`` and ``stats`` follow). Returns the
    events moved."""
    dead: list[DeadLetter] = []
    now_ns = time.time_ns()
    cur.execute(_FORGET_ATTEMPTS)
    for event_id in event_ids:
        row = cur.execute(_COUNT_ATTEMPT, (event_id,)).fetchone()
        if row is None:
            continue  # acked or dropped meanwhile
        stats.failed_attempts += 1
        attempts = int(row[0])
        if attempts < max_attempts:
            continue
        type_name, nbytes, seq = cur.execute(
            _TO_DEAD_LETTERS, (attempts, now_ns, event_id)
        ).fetchone()
        cur.execute(_DELETE_SEQ, (seq,))
        cur.execute("DELETE FROM delivery_attempts WHERE event_id = ?", (event_id,))
        counts.pending_count -= 1
        counts.pending_bytes -= nbytes
        counts.dead_letter_count += 1
        stats.dead_lettered += 1
        dead.append(DeadLetter(event_id, type_name, attempts))
    return dead
