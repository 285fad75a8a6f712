"""What the store owes actors (``deliver_to``), and upgrading stores of older schemas."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ._support import PAYLOAD, TYPE, StoreFactory, ok, started, store_factory, wait


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    async with store_factory(tmp_path) as make:
        yield make


async def test_owed_events_survive_a_restart_until_marked_delivered(
    make_store: StoreFactory,
) -> None:
    store, _ = await started(make_store)
    for i, target in enumerate(["relay", None, "", "relay"]):
        ok(await wait(store.record_received(TYPE, f"r{i}", i, "child", PAYLOAD, deliver_to=target)))
    fwd = store.record_and_forward(TYPE, "f0", 9, "child", PAYLOAD, deliver_to="bridge")
    assert ok(await wait(fwd)) is not None
    owed = await wait(store.undelivered(0, 100))
    assert [(e.event_id, actor) for e, actor in owed] == [
        ("r0", "relay"),
        ("r2", ""),
        ("r3", "relay"),
        ("f0", "bridge"),
    ]
    ok(await wait(store.mark_delivered(["r0", "f0", "nope"])))
    await wait(store.stop())

    reopened, _ = make_store()
    await wait(reopened.start())
    owed = await wait(reopened.undelivered(0, 100))
    assert [e.event_id for e, _ in owed] == ["r2", "r3"]
    assert [e.event_id for e, _ in await wait(reopened.undelivered(owed[0][0].seq, 1))] == ["r3"]


_V1_SCHEMA = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, type_name TEXT NOT NULL,
    time_ns INTEGER NOT NULL, src TEXT NOT NULL, payload BLOB NOT NULL,
    pending INTEGER NOT NULL, nbytes INTEGER NOT NULL);
CREATE UNIQUE INDEX events_event_id ON events(event_id, pending);
INSERT INTO events (event_id, type_name, time_ns, src, payload, pending, nbytes)
    VALUES ('old-pending', 't.x', 1, 's', x'7b7d', 1, 20),
           ('old-archived', 't.x', 2, 's', x'7b7d', 0, 20);
PRAGMA application_id = 1196904530;
PRAGMA user_version = 1;
"""


async def test_a_version_1_store_is_upgraded_in_place(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "events.db")) as conn:
        conn.executescript(_V1_SCHEMA)
    store, problems = await started(make_store)
    assert problems.seen == []
    assert (store.pending_count, store.archive_count) == (1, 1)
    assert await wait(store.undelivered(0, 10)) == []  # nothing was owed before version 2
    ok(await wait(store.record_received(TYPE, "new", 3, "child", PAYLOAD, deliver_to="a")))
    assert [e.event_id for e, _ in await wait(store.undelivered(0, 10))] == ["new"]
    await wait(store.stop())
    with contextlib.closing(sqlite3.connect(tmp_path / "events.db")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 2
