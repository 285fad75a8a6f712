"""Gentle on flash: a new store uses small pages, and an ack that comes alone waits (up to
``ack_delay_seconds``) for the next write to share its transaction."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gwproactor.store import StoreSettings

from ._support import (
    FIT,
    SMALL,
    SRC,
    TYPE,
    StoreFactory,
    append,
    eid,
    ok,
    started,
    store_factory,
    wait,
)


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    async with store_factory(tmp_path) as make:
        yield make


def _page_size(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        (size,) = conn.execute("PRAGMA page_size").fetchone()
        return int(size)


async def test_a_new_store_has_small_pages_an_old_one_keeps_its_own(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    store, _ = await started(make_store)
    ok(await wait(append(store, 1)))
    await wait(store.stop())
    assert _page_size(store.path) == 512
    old = tmp_path / "old.db"
    first, _ = make_store(StoreSettings(page_size=4096), path=old)
    await wait(first.start())
    await wait(first.stop())
    again, _ = make_store(path=old)
    await wait(again.start())
    ok(await wait(append(again, 2)))
    await wait(again.stop())
    assert _page_size(old) == 4096


async def test_an_ack_rides_with_the_next_append_in_one_commit(
    make_store: StoreFactory,
) -> None:
    store, _ = await started(make_store, StoreSettings(ack_delay_seconds=30.0))
    ok(await wait(append(store, 0)))
    batches = store.stats.committed_batches
    acked = store.ack(eid(0))
    assert ok(await wait(append(store, 1))) == 2
    assert ok(await wait(acked)) is True
    assert store.stats.committed_batches == batches + 1  # the delete and the insert
    assert store.pending_count == 1


async def test_an_ack_alone_is_committed_after_the_delay(make_store: StoreFactory) -> None:
    store, _ = await started(make_store, StoreSettings(ack_delay_seconds=0.2))
    ok(await wait(append(store, 0)))
    started_at = time.monotonic()
    assert ok(await wait(store.ack(eid(0)))) is True
    assert time.monotonic() - started_at >= 0.2
    assert store.pending_count == 0


async def test_a_read_or_a_stop_commits_held_acks_first(make_store: StoreFactory) -> None:
    store, _ = await started(make_store, StoreSettings(ack_delay_seconds=30.0))
    for i in range(3):
        ok(await wait(append(store, i)))
    acked = store.ack(eid(0))
    assert [e.event_id for e in await wait(store.backlog(0, 10))] == [eid(1), eid(2)]
    assert ok(await wait(acked)) is True
    late = store.ack(eid(1))
    await wait(store.stop())
    assert ok(await wait(late)) is True


def _index_sql(path: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return {
            name: sql
            for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type='index'")
            if sql
        }


async def test_type_and_time_indexes_hold_archived_events_only_after_an_upgrade(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    # A version-3 store: the type and time indexes over every event.
    store, _ = await started(make_store)
    await wait(store.stop())
    with contextlib.closing(sqlite3.connect(store.path)) as conn:
        conn.executescript(
            "DROP INDEX events_type_time; DROP INDEX events_time;"
            "CREATE INDEX events_type_time ON events(type_name, time_ns);"
            "CREATE INDEX events_time ON events(time_ns); PRAGMA user_version = 3;"
        )
    again, _ = make_store()
    await wait(again.start())
    for i in range(3):
        ok(await wait(append(again, i)))
    ok(await wait(again.record_received(TYPE, "r1", 5, SRC, b"{}")))
    # Queries still see both kinds, by type, time and kind, first and latest.
    everything = await wait(again.query("t.*", start_ns=0, limit=10))
    assert [e.event_id for e in everything] == [eid(0), eid(1), eid(2), "r1"]
    assert [e.event_id for e in await wait(again.query(limit=2, latest=True))] == [eid(2), "r1"]
    assert [e.event_id for e in await wait(again.query(pending=False))] == ["r1"]
    assert [e.event_id for e in await wait(again.query(end_ns=1_002, pending=True))] == [
        eid(0),
        eid(1),
    ]
    await wait(again.stop())
    indexes = _index_sql(again.path)
    for name in ("events_type_time", "events_time"):
        assert indexes[name].endswith("WHERE pending = 0"), indexes[name]


async def test_a_problem_each_batch_is_left_to_the_rate_limited_reporter(
    make_store: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """With an ``on_problem`` callback (a gateway's problem reporter, which rate-limits),
    the store does not also log every batch's problem itself (a full disk fails every
    batch: 1,700 lines a second in the issue)."""
    store, problems = await started(
        make_store, StoreSettings(max_bytes=SMALL, overflow_policy="refuse_new")
    )
    caplog.set_level(logging.WARNING, logger="gwproactor.store")
    for i in range(FIT + 20):
        await wait(append(store, i))
    assert problems.kinds().count("store.refused") == 20
    assert [r for r in caplog.records if r.name.startswith("gwproactor.store")] == []


def _on_disk(path: Path) -> tuple[bytes, int, int]:
    """The store file's bytes and mtime, and its WAL's size (0 if there is none)."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes(), path.stat().st_mtime_ns, wal.stat().st_size if wal.exists() else 0


async def test_opening_an_unchanged_store_writes_nothing_to_it(make_store: StoreFactory) -> None:
    # Before, every start set application_id and user_version to the values they already
    # had: page 1 rewritten through the WAL (3 fdatasyncs) and checkpointed at stop (2 more).
    store, _ = await started(make_store)
    ok(await wait(append(store, 1)))
    await wait(store.stop())  # checkpointed and truncated: the file alone holds the store
    before = _on_disk(store.path)
    assert before[2] == 0
    for _ in range(2):
        again, _ = await started(make_store)
        assert again.pending_count == 1
        await wait(again.stop())
        assert _on_disk(store.path) == before
