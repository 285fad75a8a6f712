"""The event store when things go wrong: SIGKILL, corrupt files, byte bounds, disk full."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Literal

import pytest
from result import Err, Ok

from gwproactor.errors import StoreError, StoreFullError
from gwproactor.store import StoreSettings

from ._support import (
    EVENT_BYTES,
    FIT,
    SMALL,
    TIMEOUT,
    Problems,
    StoreFactory,
    append,
    append_all,
    eid,
    err,
    gather,
    ok,
    started,
    store_factory,
    wait,
)


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    async with store_factory(tmp_path) as make:
        yield make


# ------------------------------------------------------------------ crash safety


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from gwproactor.store import EventStore, StoreSettings

    async def main(path, durability):
        store = EventStore(Path(path), StoreSettings(durability=durability))
        await store.start()
        i = 0
        while True:
            batch = [f"ev-{i + k}" for k in range(50)]
            futures = [store.append("test.kill", e, 0, "child", b"x" * 64) for e in batch]
            i += len(batch)
            for event_id, future in zip(batch, futures):
                seq = (await future).unwrap()
                sys.stdout.write(f"{seq} {event_id}\\n")
            sys.stdout.flush()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.mark.parametrize("durability", ["full", "normal"])
async def test_sigkill_loses_no_acknowledged_event(
    make_store: StoreFactory, tmp_path: Path, durability: Literal["full", "normal"]
) -> None:
    path = tmp_path / "killed.db"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(path),
        durability,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    printed: list[bytes] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while len(printed) < 2000:
                line = await proc.stdout.readline()
                assert line, "child exited early"
                printed.append(line)
    finally:
        proc.send_signal(signal.SIGKILL)
    async with asyncio.timeout(TIMEOUT):
        printed.extend((await proc.stdout.read()).splitlines(keepends=True))
        assert await proc.wait() == -signal.SIGKILL
    acknowledged = {}
    for line in printed:
        if line.endswith(b"\n"):  # the last line may be cut by the kill
            seq, event_id = line.decode().split()
            acknowledged[int(seq)] = event_id

    store, problems = make_store(StoreSettings(max_query_limit=1_000_000), path=path)
    await wait(store.start())
    stored = {e.seq: e.event_id for e in await wait(store.backlog(0, 1_000_000))}
    assert problems.seen == []
    assert len(acknowledged) >= 2000
    missing = {s: e for s, e in acknowledged.items() if stored.get(s) != e}
    assert missing == {}


# ------------------------------------------------------------------ corruption


def _files(directory: Path, pattern: str) -> list[Path]:
    return sorted(directory.glob(pattern))


async def _assert_fresh_store_after_corruption(
    make_store: StoreFactory, tmp_path: Path, original: bytes
) -> Problems:
    store, problems = make_store()
    await wait(store.start())
    assert problems.kinds() == ["store.corrupt"]
    asides = _files(tmp_path, "events.db.corrupt-*")
    assert asides, _files(tmp_path, "*")
    assert re.fullmatch(r"events\.db\.corrupt-\d{8}T\d{6}\.\d{6}Z", asides[0].name)
    assert asides[0].read_bytes() == original
    assert asides[0].name in problems.details("store.corrupt")[0]
    # Whatever could still be read was saved (see test_store_salvage.py); the store goes on.
    assert store.pending_count == store.stats.salvaged
    saved = await wait(store.backlog(0, 1000))
    seq = ok(await wait(append(store, 9999)))
    assert seq > max((e.seq for e in saved), default=0)
    assert (await wait(store.backlog(0, 1000)))[-1].event_id == eid(9999)

    return problems


async def test_garbage_file_is_moved_aside_and_reported(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    garbage = b"this is not a database" * 500
    (tmp_path / "events.db").write_bytes(garbage)
    (tmp_path / "events.db-wal").write_bytes(b"wal garbage")
    await _assert_fresh_store_after_corruption(make_store, tmp_path, garbage)
    # The -wal travels with its database, keeping the suffix sqlite looks for.
    (aside_wal,) = _files(tmp_path, "events.db.corrupt-*-wal")
    assert aside_wal.read_bytes() == b"wal garbage"


@pytest.mark.parametrize(
    ("first_page", "pages", "fill", "reason"),
    [
        (1, 3, b"\xff", "SQLITE_CORRUPT"),  # sqlite itself raises "malformed"
        (3, 1, b"\x00", "quick_check"),  # only the integrity check notices
    ],
)
async def test_malformed_database_is_moved_aside_and_reported(
    make_store: StoreFactory,
    tmp_path: Path,
    first_page: int,
    pages: int,
    fill: bytes,
    reason: str,
) -> None:
    store, _ = await started(make_store)
    await gather([append(store, i, b"y" * 1000) for i in range(200)])
    await wait(store.stop())
    path = tmp_path / "events.db"
    assert _files(tmp_path, "events.db-wal") == []  # checkpointed into the file on close
    data = bytearray(path.read_bytes())
    page = 4096
    data[first_page * page : (first_page + pages) * page] = fill * (pages * page)
    path.write_bytes(bytes(data))
    problems = await _assert_fresh_store_after_corruption(make_store, tmp_path, bytes(data))
    assert reason in problems.details("store.corrupt")[0]


async def test_foreign_sqlite_file_is_moved_aside(make_store: StoreFactory, tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE other (x)")
        conn.commit()
    original = path.read_bytes()
    await _assert_fresh_store_after_corruption(make_store, tmp_path, original)


# ------------------------------------------------------------------ byte bound and policies


def _dropped_counts(problems: Problems) -> list[int]:
    counts = []
    for detail in problems.details("store.dropped"):
        match = re.search(r"dropped the (\d+) oldest", detail)
        assert match, detail
        counts.append(int(match.group(1)))
    return counts


async def test_drop_oldest_one_at_a_time(make_store: StoreFactory) -> None:
    store, problems = await started(make_store, StoreSettings(max_bytes=SMALL))
    seqs = await append_all(store, 20)
    assert store.pending_count == FIT
    assert store.pending_bytes == FIT * EVENT_BYTES
    assert [e.seq for e in await wait(store.backlog(0, 100))] == seqs[-FIT:]
    stats = store.stats
    assert (stats.appended, stats.dropped, stats.refused) == (20, 20 - FIT, 0)
    assert problems.kinds() == ["store.dropped"] * (20 - FIT)  # one report per batch
    assert _dropped_counts(problems) == [1] * (20 - FIT)
    assert ok(await wait(store.ack(eid(0)))) is False  # dropped: nothing to ack


async def test_drop_oldest_within_one_batch(make_store: StoreFactory) -> None:
    store, problems = await started(make_store, StoreSettings(max_bytes=SMALL))
    results = await gather([append(store, i) for i in range(20)])
    survivors = await wait(store.backlog(0, 100))
    assert [e.event_id for e in survivors] == [eid(i) for i in range(20 - FIT, 20)]
    oks = [r for r in results if isinstance(r, Ok)]
    errs = [err(r) for r in results if isinstance(r, Err)]
    assert all(isinstance(e, StoreFullError) for e in errs)
    assert len(oks) + len(errs) == 20
    assert [ok(r) for r in results[-FIT:]] == [e.seq for e in survivors]
    stats = store.stats
    assert stats.dropped == 20 - FIT
    assert stats.appended == len(oks)
    assert sum(_dropped_counts(problems)) == 20 - FIT
    assert len(problems.seen) <= stats.committed_batches


async def test_refuse_new(make_store: StoreFactory) -> None:
    settings = StoreSettings(max_bytes=SMALL, overflow_policy="refuse_new")
    store, problems = await started(make_store, settings)
    results = [await wait(append(store, i)) for i in range(20)]
    seqs = [ok(r) for r in results[:FIT]]
    assert all(isinstance(err(r), StoreFullError) for r in results[FIT:])
    assert [e.seq for e in await wait(store.backlog(0, 100))] == seqs
    stats = store.stats
    assert (stats.appended, stats.refused, stats.dropped) == (FIT, 20 - FIT, 0)
    assert problems.kinds() == ["store.refused"] * (20 - FIT)
    assert "refused 1 new events" in problems.details("store.refused")[0]
    # Room again once an event is acked.
    assert ok(await wait(store.ack(eid(0)))) is True
    assert ok(await wait(append(store, 99))) > seqs[-1]


@pytest.mark.parametrize("policy", ["drop_oldest", "refuse_new"])
async def test_event_larger_than_bound_is_refused(
    make_store: StoreFactory, policy: Literal["drop_oldest", "refuse_new"]
) -> None:
    settings = StoreSettings(max_bytes=SMALL, overflow_policy=policy)
    store, problems = await started(make_store, settings)
    await append_all(store, 3)
    assert isinstance(err(await wait(append(store, 3, b"z" * SMALL))), StoreFullError)
    assert store.pending_count == 3
    assert (store.stats.refused, store.stats.dropped) == (1, 0)
    assert problems.kinds() == ["store.refused"]


# ------------------------------------------------------------------ write failures


async def test_disk_full_returns_errors_and_recovers(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    # max_page_count makes sqlite fail with SQLITE_FULL, as a full disk would.
    settings = StoreSettings(max_file_bytes=64 * 1024)
    store, problems = await started(make_store, settings)
    payload = b"f" * 500
    seqs: list[int] = []
    failure: StoreError | None = None
    for i in range(1000):
        result = await wait(append(store, i, payload))
        if isinstance(result, Err):
            failure = result.err_value
            break
        seqs.append(result.ok_value)
    assert failure is not None, "the page limit was never reached"
    assert not isinstance(failure, StoreFullError)
    assert "full" in str(failure)
    assert isinstance(failure.__cause__, sqlite3.Error)
    assert store.stats.write_errors == 1
    assert problems.kinds() == ["store.write_error"]
    assert store.pending_count == len(seqs)
    assert [e.seq for e in await wait(store.backlog(0, 1000))] == seqs

    # Space freed by acks: the store keeps working.
    acks = await gather([store.ack(eid(i)) for i in range(len(seqs) // 2)])
    assert all(ok(a) for a in acks)
    assert ok(await wait(append(store, 5000, payload))) > seqs[-1]
    await wait(store.stop())

    # Limit raised: everything is still there and more fits.
    bigger, problems = make_store()
    await wait(bigger.start())
    assert bigger.pending_count == len(seqs) - len(seqs) // 2 + 1
    results = await gather([append(bigger, 6000 + i, payload) for i in range(len(seqs))])
    assert all(isinstance(r, Ok) for r in results)
    assert problems.seen == []
