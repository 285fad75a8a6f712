"""The event store's API against real sqlite files: commits, order, lifecycle, reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from result import Err, Result

from gwproactor.errors import StateError, StoreError, StoreFullError
from gwproactor.store import EventStore, StoredEvent, StoreSettings, StoreState

from ._support import (
    EVENT_BYTES,
    FIT,
    PAYLOAD,
    SMALL,
    SRC,
    TYPE,
    StoreFactory,
    append,
    append_all,
    eid,
    err,
    gather,
    ok,
    started,
    state_of,
    store_factory,
    wait,
)


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    async with store_factory(tmp_path) as make:
        yield make


# ------------------------------------------------------------------ basics and group commit


async def test_concurrent_appends_are_group_committed_in_order(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, problems = await started(make_store)
    mailbox = store._mailbox  # noqa: SLF001  (what reaches the loop, per batch)
    assert mailbox is not None
    posts: list[object] = []
    real_deliver = mailbox._deliver  # noqa: SLF001

    def counting_deliver(out: Any) -> None:
        posts.append(out)
        real_deliver(out)

    monkeypatch.setattr(mailbox, "_deliver", counting_deliver)

    futures = [append(store, i) for i in range(1000)]
    seqs = [ok(r) for r in await gather(futures)]

    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 1000
    stats = store.stats
    assert stats.appended == 1000
    assert stats.committed_batches < 100  # batched, not one commit per event
    assert len(posts) == stats.committed_batches  # one loop callback per batch
    assert store.pending_count == 1000
    assert store.pending_bytes == 1000 * EVENT_BYTES
    backlog = await wait(store.backlog(0, 1000))
    assert [e.seq for e in backlog] == seqs
    assert [e.event_id for e in backlog] == [eid(i) for i in range(1000)]
    assert backlog[7] == StoredEvent(seqs[7], eid(7), TYPE, 1_007, SRC, PAYLOAD, pending=True)
    assert problems.seen == []


async def test_batch_size_is_bounded_by_max_batch(make_store: StoreFactory) -> None:
    store, _ = await started(make_store, StoreSettings(max_batch=10))
    await gather([append(store, i) for i in range(100)])
    assert store.stats.committed_batches >= 10


async def test_reads_see_writes_submitted_before_them(make_store: StoreFactory) -> None:
    store, _ = await started(make_store)
    futures = [append(store, i) for i in range(5)]
    acked = store.ack(eid(0))
    events = await wait(store.backlog(0, 10))  # not awaiting the writes first
    assert [e.event_id for e in events] == [eid(i) for i in range(1, 5)]
    assert all(f.done() for f in futures)
    assert acked.done()
    assert ok(acked.result()) is True


async def test_duplicate_pending_event_id_is_refused(make_store: StoreFactory) -> None:
    store, _ = await started(make_store)
    first, second = append(store, 1), append(store, 1)
    assert ok(await wait(first)) == 1
    error = err(await wait(second))
    assert not isinstance(error, StoreFullError)
    assert "already pending" in str(error)
    assert store.stats.duplicate_appends == 1
    assert store.pending_count == 1


async def test_acks_empty_the_store_and_seqs_are_never_reused(
    make_store: StoreFactory,
) -> None:
    store, _ = await started(make_store)
    seqs = await append_all(store, 5)
    acks = await gather([store.ack(eid(i)) for i in range(5)])
    assert [ok(a) for a in acks] == [True] * 5
    assert ok(await wait(store.ack(eid(0)))) is False
    assert ok(await wait(store.ack("never-appended"))) is False
    assert (store.pending_count, store.pending_bytes, store.stats.acked) == (0, 0, 5)
    assert await wait(store.query(limit=100)) == []
    await wait(store.stop())

    reopened, _ = make_store()
    await wait(reopened.start())
    assert reopened.pending_count == 0
    assert ok(await wait(append(reopened, 9))) > max(seqs)


async def test_restart_reopens_with_backlog_intact(make_store: StoreFactory) -> None:
    store, _ = await started(make_store)
    await append_all(store, 30)
    await gather([store.ack(eid(i)) for i in (0, 5, 29)])
    before = await wait(store.backlog(0, 100))
    await wait(store.stop())
    assert store.state is StoreState.STOPPED

    reopened, problems = make_store()
    await wait(reopened.start())
    assert reopened.pending_count == 27
    assert reopened.pending_bytes == 27 * EVENT_BYTES
    assert await wait(reopened.backlog(0, 100)) == before
    after_5th = await wait(reopened.backlog(before[4].seq, 3))
    assert after_5th == before[5:8]
    assert problems.seen == []


async def test_stop_commits_everything_queued(make_store: StoreFactory) -> None:
    store, _ = await started(make_store)
    futures = [append(store, i) for i in range(200)]
    await wait(store.stop())
    assert all(f.done() for f in futures)
    assert [ok(f.result()) for f in futures] == list(range(1, 201))
    await wait(store.stop())  # idempotent

    reopened, _ = make_store()
    await wait(reopened.start())
    assert reopened.pending_count == 200


async def test_cancelled_stop_still_stops(make_store: StoreFactory) -> None:
    store, _ = await started(make_store)
    futures = [append(store, i) for i in range(100)]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):  # cancels stop() at its first suspension
            await store.stop()
    assert state_of(store) is StoreState.STOPPING
    with pytest.raises(StateError):
        append(store, 100)
    await wait(store.stop())  # joins the same, shielded, stop
    assert state_of(store) is StoreState.STOPPED
    assert [ok(f.result()) for f in futures] == list(range(1, 101))


async def test_lifecycle_errors(make_store: StoreFactory, tmp_path: Path) -> None:
    store, _ = make_store()
    with pytest.raises(StateError):
        append(store, 0)
    await wait(store.start())
    with pytest.raises(StateError):
        await store.start()
    with pytest.raises(StateError, match="loop thread"):
        store.append_threadsafe(TYPE, eid(0), 0, SRC, PAYLOAD)
    await wait(store.stop())
    with pytest.raises(StateError):
        store.ack(eid(0))
    with pytest.raises(StateError):
        await store.query()

    never_started, _ = make_store(path=tmp_path / "other.db")
    await wait(never_started.stop())
    assert never_started.state is StoreState.STOPPED


async def test_start_fails_with_store_error_when_path_unusable(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    (tmp_path / "a-directory").mkdir()
    store, problems = make_store(path=tmp_path / "a-directory")
    with pytest.raises(StoreError, match="cannot open"):
        await wait(store.start())
    assert store.state is StoreState.STOPPED
    assert problems.seen == []


async def test_append_threadsafe_from_worker_threads(make_store: StoreFactory) -> None:
    store, _ = await started(make_store)

    def worker(base: int) -> list[Result[int, StoreError]]:
        return [store.append_threadsafe(TYPE, eid(base + i), 0, SRC, PAYLOAD) for i in range(25)]

    results = await wait(asyncio.gather(*(asyncio.to_thread(worker, b * 100) for b in range(4))))
    seqs = [ok(r) for per_thread in results for r in per_thread]
    assert len(set(seqs)) == 100
    for per_thread in results:  # each thread's events keep its order
        assert [ok(r) for r in per_thread] == sorted(ok(r) for r in per_thread)
    await wait(store.flush())
    assert store.pending_count == 100
    assert store.stats.appended == 100


# ------------------------------------------------------------------ received events


async def test_record_received_deduplicates_across_restarts(make_store: StoreFactory) -> None:
    store, _ = await started(make_store)
    first = store.record_received(TYPE, "child-1", 5, "child", PAYLOAD)
    again = store.record_received(TYPE, "child-1", 5, "child", PAYLOAD)
    assert (ok(await wait(first)), ok(await wait(again))) == (True, False)
    assert ok(await wait(store.record_received(TYPE, "child-2", 6, "child", PAYLOAD))) is True
    assert (store.stats.received_new, store.stats.received_duplicate) == (2, 1)
    assert (store.archive_count, store.pending_count) == (2, 0)
    # A gateway may forward a received event upstream under the same id.
    assert ok(await wait(store.append(TYPE, "child-1", 5, "child", PAYLOAD))) > 0
    await wait(store.stop())

    reopened, _ = make_store()
    await wait(reopened.start())
    assert reopened.archive_count == 2
    assert ok(await wait(reopened.record_received(TYPE, "child-1", 5, "c", PAYLOAD))) is False
    archived = await wait(reopened.query(pending=False))
    assert [(e.event_id, e.pending) for e in archived] == [("child-1", False), ("child-2", False)]
    assert [e.event_id for e in await wait(reopened.query(pending=True))] == ["child-1"]


async def test_archive_is_bounded_oldest_first(make_store: StoreFactory) -> None:
    store, problems = await started(make_store, StoreSettings(archive_max_bytes=SMALL))
    for i in range(20):
        assert ok(await wait(store.record_received(TYPE, eid(i), i, SRC, PAYLOAD))) is True
    assert store.archive_count == FIT
    assert store.archive_bytes == FIT * EVENT_BYTES
    assert store.stats.archive_dropped == 20 - FIT
    kept = await wait(store.query(pending=False))
    assert [e.event_id for e in kept] == [eid(i) for i in range(20 - FIT, 20)]
    assert problems.seen == []  # a rolling archive is not a problem


def _archive_own(store: EventStore, i: int, payload: bytes = PAYLOAD) -> asyncio.Future[Any]:
    """``archive_then`` (a gateway without an upstream link) as a future."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    store.archive_then(TYPE, eid(i), 1_000 + i, SRC, payload, future.set_result)
    return future


async def test_archive_then_archives_own_events_counted_as_appends(
    make_store: StoreFactory,
) -> None:
    store, problems = await started(make_store)
    seqs = [ok(await wait(_archive_own(store, i))) for i in range(3)]
    assert seqs == sorted(seqs)
    assert (store.archive_count, store.pending_count) == (3, 0)
    assert (store.stats.appended, store.stats.received_new) == (3, 0)
    again = err(await wait(_archive_own(store, 1)))
    assert "already archived" in str(again)
    assert store.stats.duplicate_appends == 1
    kept = await wait(store.query(pending=False))
    assert [(e.seq, e.event_id, e.pending) for e in kept] == [
        (seq, eid(i), False) for i, seq in enumerate(seqs)
    ]
    assert problems.seen == []


async def test_archive_then_refuses_an_event_larger_than_the_archive(
    make_store: StoreFactory,
) -> None:
    store, problems = await started(make_store, StoreSettings(archive_max_bytes=SMALL))
    for i in range(FIT):
        ok(await wait(_archive_own(store, i)))
    refused = err(await wait(_archive_own(store, 99, payload=b"p" * SMALL)))
    assert isinstance(refused, StoreFullError)
    assert "archive_max_bytes" in str(refused)
    # The archive was not emptied to make room for it.
    assert (store.archive_count, store.stats.refused, store.stats.appended) == (FIT, 1, FIT)
    assert problems.kinds() == ["store.refused"]
    assert "archive_max_bytes" in problems.details("store.refused")[0]


async def test_archive_then_evicted_within_its_own_batch_is_not_ok(
    make_store: StoreFactory,
) -> None:
    store, _ = await started(make_store, StoreSettings(archive_max_bytes=SMALL))
    results = await gather([_archive_own(store, i) for i in range(20)])
    kept = await wait(store.query(pending=False))
    assert [e.event_id for e in kept] == [eid(i) for i in range(20 - FIT, 20)]
    oks = [ok(r) for r in results if not isinstance(r, Err)]
    errs = [err(r) for r in results if isinstance(r, Err)]
    assert all(isinstance(e, StoreFullError) for e in errs)
    assert [ok(r) for r in results[-FIT:]] == [e.seq for e in kept]
    # Ok only for what became durable: an event dropped before its commit is an Err.
    assert store.stats.appended == len(oks)
    assert len(oks) >= FIT


# ------------------------------------------------------------------ queries


async def test_query_by_pattern_time_limit_and_pending(make_store: StoreFactory) -> None:
    store, _ = await started(make_store)
    types = ["gw.relay.state", "gw.relay.cmd", "gw.thermo.state", "gw.relay", "other.x"]
    await gather([store.append(t, f"id{i}", 100 * i, SRC, b"{}") for i, t in enumerate(types)])
    await wait(store.record_received("gw.child.state", "r1", 250, "child", b"{}"))

    async def ids(**kwargs: Any) -> list[str]:
        return [e.event_id for e in await wait(store.query(**kwargs))]

    assert await ids() == ["id0", "id1", "id2", "id3", "id4", "r1"]
    assert await ids(pattern="gw.relay.*") == ["id0", "id1", "id3"]
    assert await ids(pattern="gw.?.state") == ["id0", "id2", "r1"]
    assert await ids(pattern="gw.relay") == ["id3"]
    assert await ids(pattern="*") == await ids()
    assert await ids(pattern="?.x") == ["id4"]
    assert await ids(start_ns=100, end_ns=300) == ["id1", "id2", "r1"]
    assert await ids(pattern="gw.*", start_ns=200) == ["id2", "id3", "r1"]
    assert await ids(limit=2) == ["id0", "id1"]
    assert await ids(limit=2, latest=True) == ["id4", "r1"]
    assert await ids(pending=False) == ["r1"]
    assert await ids(pattern="gw.?.state", pending=True) == ["id0", "id2"]
    with pytest.raises(ValueError, match="only allowed as the last level"):
        await store.query(pattern="gw.*.state")
    with pytest.raises(ValueError, match="limit"):
        await store.query(limit=0)
    with pytest.raises(ValueError, match="limit"):
        await store.backlog(0, store.settings.max_query_limit + 1)


async def test_failing_problem_callback_does_not_break_the_store(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    def explode(kind: str, detail: str) -> None:
        raise RuntimeError(kind)

    store = EventStore(tmp_path / "x.db", StoreSettings(max_bytes=SMALL), on_problem=explode)
    await wait(store.start())
    try:
        await append_all(store, FIT + 3)
        assert store.stats.dropped == 3
    finally:
        await wait(store.stop())
