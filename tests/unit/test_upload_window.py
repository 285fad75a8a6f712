"""The uploader's window gives way to its link's in-flight limit (an MQTT 5 broker's Receive
Maximum, say): past that limit a publish only waits in the transport while its ack timer
runs. The window starts at the limit and grows by whole limits as far as they leave within
a quarter of the ack timeout, judged by the quickest ack lately. The limit is read at every
activation, since every connection may have its own (a failover to another broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import cast

from result import Ok, Result

from gwproactor import BrokerSettings, Proactor
from gwproactor.errors import LinkError, StoreError
from gwproactor.events import Uploader
from gwproactor.links import Link
from gwproactor.mqtt import MemoryBroker, MemoryTransport
from gwproactor.store import EventStore, StoredEvent
from gwproactor.wire.message import Header
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    memory_factory,
    pair_settings,
    record_events,
    running,
    wait_active,
    wait_until,
)


async def _sent(gateway: Proactor, uploader: Uploader, in_flight: int) -> None:
    """Until ``in_flight`` events are in flight: events committed while a backlog read runs
    are sent once it (or the next) returns. Each store round trip lets it move on."""
    for _ in range(50):
        if uploader.in_flight == in_flight:
            return
        await gateway.store.flush()
    assert uploader.in_flight == in_flight


async def test_the_window_follows_the_in_flight_limit_of_each_connection() -> None:
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings())
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    recorder = record_events(parent)
    uploader = child.events.uploader
    assert uploader is not None
    link = child.link("parent")
    transport = link.transport
    parents_transport = parent.link("child").transport
    assert isinstance(transport, MemoryTransport)
    async with running(parent, child):
        await wait_active(child, "parent")
        assert link.inflight_limit == 0  # the in-memory transport: no limit
        assert uploader.effective_window == uploader.window == 200

        # A connection with a limit of 7 (as a broker's Receive Maximum would set it).
        transport.inflight_limit = 7
        assert uploader.effective_window == 200  # read at the next activation, not before
        transport.request_reconnect()
        await wait_active(child, "parent")
        assert uploader.effective_window == 7
        parents_transport.pause_reading()  # no acks: what the uploader sends stays in flight
        for n in range(30):
            await child.generate_event(Counted(n=n))
        await _sent(child, uploader, 7)
        await child.store.flush()  # and no more after that
        assert (uploader.in_flight, uploader.stats.sent) == (7, 7)
        status = child.status()
        assert (status["uploader"]["window"], status["uploader"]["configured_window"]) == (7, 200)
        assert status["links"]["parent"]["inflight_limit"] == 7
        with child.listener("event.acked") as acks:
            parents_transport.resume_reading()
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
        # Acks in memory come back at once: as many limits as the window holds leave well
        # within the ack timeout.
        assert uploader.effective_window == 200

        # The next connection has none: the configured window again.
        transport.inflight_limit = 0
        transport.request_reconnect()
        await wait_active(child, "parent")
        assert uploader.effective_window == 200
        parents_transport.pause_reading()
        for n in range(30, 60):
            await child.generate_event(Counted(n=n))
        await _sent(child, uploader, 30)
        with child.listener("event.acked") as acks:
            parents_transport.resume_reading()
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
    assert [e.n for e in recorder.events] == list(range(60))


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Store:
    """Pending events seq 1..n; deletes answered at once."""

    def __init__(self, count: int) -> None:
        self.events = [_event(seq) for seq in range(1, count + 1)]

    @property
    def pending_count(self) -> int:
        return len(self.events)

    async def backlog(self, after_seq: int, limit: int) -> list[StoredEvent]:
        return [e for e in self.events if e.seq > after_seq][:limit]

    def ack_many_then(
        self, ids: list[str], then: Callable[[Result[int, StoreError]], None]
    ) -> None:
        self.events = [e for e in self.events if e.event_id not in ids]
        then(Ok(len(ids)))


def _event(seq: int) -> StoredEvent:
    return StoredEvent(seq, f"e{seq}", "test.counted", 0, "child", b"{}", True)


async def test_the_window_grows_by_limits_that_leave_within_a_quarter_of_the_ack_timeout() -> None:
    clock = _Clock()
    sent: dict[str, float] = {}  # message id -> when the link took it

    def publish_bytes(header: Header, payload: bytes) -> Result[None, LinkError]:
        sent[header.message_id] = clock.now
        return Ok(None)

    link = SimpleNamespace(
        name="up",
        gateway="child",
        peer="parent",
        inflight_limit=20,
        settings=SimpleNamespace(ack_timeout_seconds=2.0),  # a quarter: 0.5 s
        codec=SimpleNamespace(encode_with_payload_json=lambda header, payload: b"{}"),
        publish_bytes=publish_bytes,
    )
    store = _Store(1000)
    uploader = Uploader(
        cast(EventStore, store), cast(Link, link), window=200, read_batch=2000, clock=clock
    )
    with_read = asyncio.get_running_loop().create_future()
    uploader.link_active()
    (read,) = [t for t in asyncio.all_tasks() if t.get_name() == "uploader[up].read"]
    read.add_done_callback(lambda _: with_read.set_result(None))
    async with asyncio.timeout(TIMEOUT):
        await with_read
    assert (uploader.effective_window, uploader.in_flight) == (20, 20)  # nothing measured yet

    def ack_after(seconds: float) -> int:
        """Ack the newest event in flight ``seconds`` after it was sent (the clock only
        goes forwards: the newest were sent now)."""
        event_id = max(sent, key=lambda i: (sent[i], int(i[1:])))
        clock.now = sent.pop(event_id) + seconds
        before = uploader.in_flight
        assert uploader.acked(event_id)
        # Refilled at once up to the window; above it, in flight only drains.
        assert uploader.in_flight == max(uploader.effective_window, before - 1)
        return uploader.effective_window

    assert ack_after(0.6) == 20  # one round trip is more than the budget: one limit
    assert ack_after(0.2) == 40  # two round trips fit in 0.5 s
    assert ack_after(0.3) == 40  # slower than the quickest lately: no change
    assert ack_after(0.01) == 200  # fifty would: the configured window
    assert ack_after(0.4) == 200
    assert ack_after(0.7) == 20  # over the budget: the path got slower, back to the limit
    assert ack_after(0.15) == 60
    # Nothing acked for an ack timeout (an idle link): the next event goes out as if
    # nothing were known, and the first ack after it is the new estimate.
    clock.now += 2.5
    uploader.committed(_event(5000))
    assert uploader.effective_window == 20
    assert ack_after(0.2) == 40

    # No limit, or one at least the window: the window as configured, whatever the acks.
    for limit in (0, 200, 500):
        link.inflight_limit = limit
        uploader.link_inactive()
        sent.clear()
        uploader.link_active()
        assert uploader.effective_window == 200
    uploader.link_inactive()
