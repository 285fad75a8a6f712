"""A damaged store: every readable row is saved into a fresh store; WAL checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gwproactor.store import StoreSettings

from ._support import StoreFactory, append, eid, gather, ok, started, store_factory, wait


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    async with store_factory(tmp_path) as make:
        yield make


def _root_page(path: Path, name: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        (page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,))
        return int(page[0])


def _overwrite_page(path: Path, page: int) -> None:
    """Garbage over page ``page`` (sqlite numbers pages from 1), whatever the page size."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    data = bytearray(path.read_bytes())
    data[(page - 1) * size : page * size] = bytes(range(256)) * (size // 256)
    path.write_bytes(bytes(data))


def _saved_lost(detail: str) -> tuple[int, str]:
    match = re.search(r"saved (\d+) rows into a fresh store, (\S+) events lost", detail)
    assert match, detail
    return int(match.group(1)), match.group(2)


async def _store_of(make_store: StoreFactory, count: int) -> Path:
    store, _ = await started(make_store)
    await gather([append(store, i) for i in range(count)])
    await wait(store.stop())
    return store.path


async def test_a_damaged_index_page_costs_no_event(make_store: StoreFactory) -> None:
    path = await _store_of(make_store, 151)
    _overwrite_page(path, _root_page(path, "events_time"))
    store, problems = make_store()
    await wait(store.start())
    assert problems.kinds() == ["store.corrupt"]
    assert _saved_lost(problems.details("store.corrupt")[0]) == (151, "0")
    assert (store.stats.salvaged, store.stats.salvage_lost) == (151, 0)
    assert store.pending_count == 151
    events = await wait(store.backlog(0, 1000))
    assert [e.event_id for e in events] == [eid(i) for i in range(151)]
    assert [e.seq for e in events] == list(range(1, 152))  # same seq: same upload order
    assert ok(await wait(append(store, 500))) == 152  # AUTOINCREMENT goes on
    assert len(list(path.parent.glob("events.db.corrupt-*Z"))) == 1
    assert not list(path.parent.glob("*.salvage*"))


async def test_a_damaged_table_page_costs_only_its_rows(make_store: StoreFactory) -> None:
    path = await _store_of(make_store, 400)
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        leaves = conn.execute(
            "SELECT pageno, ncell FROM dbstat WHERE name = 'events' AND pagetype = 'leaf' "
            "ORDER BY pageno"
        ).fetchall()
    page, rows_on_page = leaves[len(leaves) // 2]  # a leaf in the middle of the table
    _overwrite_page(path, page)
    store, problems = make_store()
    await wait(store.start())
    saved, lost = _saved_lost(problems.details("store.corrupt")[0])
    assert int(lost) == rows_on_page  # exactly the rows of that page, no more
    assert saved + int(lost) == 400

    assert store.pending_count == saved
    ids = [e.event_id for e in await wait(store.backlog(0, 1000))]
    assert ids == sorted(ids)  # in order, with a gap where the page was
    assert ids[0] == eid(0) and ids[-1] == eid(399)


async def test_a_store_copied_without_its_wal_misses_nothing_after_a_checkpoint(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    settings = StoreSettings(checkpoint_interval_seconds=0.1)
    store, _ = await started(make_store, settings)
    await gather([append(store, i) for i in range(150)])
    async with asyncio.timeout(20):
        while store.stats.checkpoints == 0:
            await store.flush()  # a round trip to the writer thread, not a sleep
    # An operator copies events.db alone (and its -shm) while the gateway runs.
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(store.path, copy / "events.db")
    shutil.copy(store.path.with_name("events.db-shm"), copy / "events.db-shm")
    second, problems = make_store(path=copy / "events.db")
    await wait(second.start())
    assert second.pending_count == 150
    # The -shm without its -wal says that a WAL was lost: reported at start.
    assert problems.kinds() == ["store.wal_missing"]
    assert "events.db-wal" in problems.details("store.wal_missing")[0]


async def test_a_clean_stop_leaves_no_wal(make_store: StoreFactory) -> None:
    store, _ = await started(make_store)
    await gather([append(store, i) for i in range(10)])
    await wait(store.stop())
    wal = store.path.with_name("events.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0
