"""Message ids made in one process sort in the order they were made.

The store's unique index on event ids then grows at one end: with the unpadded hex counter
of before, ``…-f`` sorted after ``…-10`` and ``…-ff`` after ``…-100``, so inserts landed in
the middle of the index and split its pages more often (``scripts/profile_wal.py``).
"""

from __future__ import annotations

import itertools
import threading

import pytest

from gwproactor.wire import message
from gwproactor.wire.message import MAX_ID_LENGTH, Header, new_message_id


def _ids_from(start: int, count: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(message, "_ID_COUNTER", itertools.count(start))
    return [new_message_id() for _ in range(count)]


def test_ids_sort_in_creation_order() -> None:
    ids = [new_message_id() for _ in range(5000)]
    assert sorted(ids) == ids
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("digits", range(1, 12))
def test_ids_sort_across_each_hex_digit_boundary(
    digits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From the last counters of ``digits`` hex digits to the first of ``digits + 1``, up to
    # the last of the 12-digit width (2**48 ids per run).
    ids = _ids_from(16**digits - 3, 6, monkeypatch)
    assert sorted(ids) == ids
    assert len({len(i) for i in ids}) == 1  # fixed width


def test_ids_at_the_end_of_the_width_stay_unique_and_valid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = _ids_from(16**12 - 2, 4, monkeypatch)
    assert sorted(ids[:2]) == ids[:2]
    assert len(set(ids)) == 4  # past 2**48 longer, still unique
    for event_id in ids:
        Header(src="a", dst="b", message_type="t", message_id=event_id)
        assert 1 <= len(event_id) <= MAX_ID_LENGTH


def test_ids_are_unique_across_threads() -> None:
    per_thread, threads = 20_000, 4
    made: list[list[str]] = [[] for _ in range(threads)]

    def make(out: list[str]) -> None:
        out.extend(new_message_id() for _ in range(per_thread))

    workers = [threading.Thread(target=make, args=(out,)) for out in made]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    every = [i for out in made for i in out]
    assert len(set(every)) == per_thread * threads
    for out in made:  # each thread's own ids are in its creation order
        assert sorted(out) == out
