"""The uploader keeps its backlog read task and cancels it when the link stops being active
(at a gateway's stop, too): no task of it outlives the link and the store. It reads the
backlog ahead, so that the window stays full while a read runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import cast

from result import Ok, Result

from gwproactor.errors import LinkError, StoreError
from gwproactor.events import Uploader
from gwproactor.links import Link
from gwproactor.store import EventStore, StoredEvent
from gwproactor.wire.message import Header
from tests.helpers import TIMEOUT


class _SlowStore:
    """A store whose backlog read never finishes (until cancelled)."""

    pending_count = 0

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def backlog(self, after_seq: int, limit: int) -> list[StoredEvent]:
        self.reading.set()
        await self.never
        return []


async def test_a_backlog_read_in_flight_is_cancelled_when_the_link_goes_inactive() -> None:
    store = _SlowStore()
    link = SimpleNamespace(name="up", inflight_limit=0)
    uploader = Uploader(cast(EventStore, store), cast(Link, link), window=10, read_batch=100)
    uploader.link_active()  # nothing queued: it reads the backlog
    async with asyncio.timeout(TIMEOUT):
        await store.reading.wait()
    (read,) = [t for t in asyncio.all_tasks() if t.get_name() == "uploader[up].read"]
    try:
        uploader.link_inactive()
        await asyncio.wait({read}, timeout=TIMEOUT)
        assert read.cancelled()
    finally:
        store.never.cancel()
        await asyncio.wait({read}, timeout=TIMEOUT)


class _GatedStore:
    """Pending events seq 1..n; a backlog read is answered only once the test opens the gate
    (a read waits behind the store's held deletes: it takes a while, and acks come in)."""

    def __init__(self, count: int) -> None:
        self.events = [
            StoredEvent(seq, f"e{seq}", "test.counted", 0, "child", b"{}", True)
            for seq in range(1, count + 1)
        ]
        self.gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.log: list[str] = []  # deletes and flushes, in the order asked

    @property
    def pending_count(self) -> int:
        return len(self.events)

    async def backlog(self, after_seq: int, limit: int) -> list[StoredEvent]:
        await self.gate
        return [e for e in self.events if e.seq > after_seq][:limit]

    def ack_many_then(
        self, ids: list[str], then: Callable[[Result[int, StoreError]], None]
    ) -> None:
        gone = set(ids)
        self.events = [e for e in self.events if e.event_id not in gone]
        self.log.append(f"delete {len(ids)}")
        then(Ok(len(ids)))

    async def flush(self) -> None:
        self.log.append("flush")


def _reading() -> asyncio.Task[None] | None:
    reads = [t for t in asyncio.all_tasks() if t.get_name() == "uploader[up].read"]
    return next((t for t in reads if not t.done()), None)


def _sending_link(sent: list[str]) -> Link:
    """A link named ``up`` with no in-flight limit that appends each sent event's id to
    ``sent``."""

    def publish_bytes(header: Header, payload: bytes) -> Result[None, LinkError]:
        sent.append(header.message_id)
        return Ok(None)

    link = SimpleNamespace(
        name="up",
        gateway="child",
        peer="parent",
        inflight_limit=0,
        settings=SimpleNamespace(ack_timeout_seconds=2.0),
        codec=SimpleNamespace(encode_with_payload_json=lambda header, payload: b"{}"),
        publish_bytes=publish_bytes,
    )
    return cast(Link, link)


async def test_the_window_stays_full_while_the_next_backlog_read_runs() -> None:
    """A backlog read takes as long as 10 acks here. The uploader asks for the next batch
    while events are still queued, so no ack finds nothing to send while events are left
    unsent (before: the next read started once the queue was empty, and the window drained
    by 10 during each read). The same reads, in order, each event sent once."""
    count, window, read_batch, read_acks = 1000, 20, 100, 10
    store = _GatedStore(count)
    sent: list[str] = []
    uploader = Uploader(
        cast(EventStore, store), _sending_link(sent), window=window, read_batch=read_batch
    )

    async def answer_read() -> None:
        read = _reading()
        assert read is not None
        store.gate.set_result(None)
        async with asyncio.timeout(TIMEOUT):
            await asyncio.wait({read})
        store.gate = asyncio.get_running_loop().create_future()

    uploader.link_active()
    await answer_read()
    starved = 0  # acks after which the window was not full although events were unsent
    asked_at: int | None = None  # acks when the running read was first seen
    for acked in range(1, count + 1):
        assert uploader.acked(sent[acked - 1])
        if asked_at is None and _reading() is not None:
            asked_at = acked
        if asked_at is not None and acked - asked_at >= read_acks:
            await answer_read()
            asked_at = None
        if len(sent) < count and uploader.in_flight < window:
            starved += 1
    if _reading() is not None:
        await answer_read()  # the last read finds nothing: caught up
    assert starved == 0
    assert sent == [f"e{seq}" for seq in range(1, count + 1)]
    assert uploader.stats.reads == count // read_batch + 1
    uploader.link_inactive()


async def test_a_drained_backlog_has_its_last_acks_committed_at_once() -> None:
    """The store holds acks that come alone (up to store.ack_delay_seconds) for the next
    write; once a backlog read from the store is all acked, the uploader asks it to commit
    what it holds (a barrier after the last delete), once per drain. Live events sent as
    they are committed (a trickle) leave their acks held, as before."""
    count, window, read_batch = 250, 20, 100
    store = _GatedStore(count)
    store.gate.set_result(None)  # reads answered at once
    sent: list[str] = []
    uploader = Uploader(
        cast(EventStore, store), _sending_link(sent), window=window, read_batch=read_batch
    )

    async def settle() -> None:
        """Until the deletes asked with call_soon are asked, and no read or commit task of
        the uploader is left running."""
        loop = asyncio.get_running_loop()
        names = ("uploader[up].read", "uploader[up].commit")
        for _ in range(100):
            turn = loop.create_future()
            loop.call_soon(turn.set_result, None)  # after what was already scheduled
            await turn
            tasks = [t for t in asyncio.all_tasks() if t.get_name() in names and not t.done()]
            if not tasks:
                return
            async with asyncio.timeout(TIMEOUT):
                await asyncio.wait(tasks)
        raise AssertionError("the uploader did not settle")

    uploader.link_active()
    await settle()
    acked = 0
    while acked < len(sent):
        assert uploader.acked(sent[acked])
        acked += 1
        await settle()
    assert acked == count
    assert store.log[-1] == "flush"
    assert store.log.count("flush") == 1
    # A trickle of live events, each acked alone: held by the store as before.
    for seq in range(count + 1, count + 4):
        uploader.committed(StoredEvent(seq, f"e{seq}", "test.counted", 0, "child", b"{}", True))
        assert uploader.acked(sent[-1])
        await settle()
    assert store.log.count("flush") == 1
    assert store.log[-3:] == ["delete 1"] * 3
    uploader.link_inactive()
