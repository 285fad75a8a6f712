"""Querying stored events, and comm-event listeners, on real proactors.

Queries: by type pattern (``?`` one level, ``*`` any suffix), wall-clock time range
(``start_ns`` inclusive, ``end_ns`` exclusive), limit (the oldest first) and pending state,
on a gateway's own archive and on what a parent received from a child over mosquitto.
Listeners: registered only inside ``with``, async iteration, ``get(timeout)``, filtering by
names and predicate, and a bounded history.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
from result import Ok

from gwproactor import BrokerSettings, Event, Proactor, ProactorSettings
from gwproactor.observe.listeners import CommEvent
from gwproactor.store import StoredEvent
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    Hello,
    Recorder,
    pair_settings,
    running,
    wait_active,
    wait_until,
)

pytestmark = pytest.mark.broker

T0 = 1_700_000_000_000_000_000  # a fixed wall-clock origin (ns) for time-range queries
STEP = 1_000_000  # 1 ms between events


class _Reading(Event):
    n: int


class SiteATemp(_Reading):
    type_name: ClassVar[str] = "site.a.temp"


class SiteBTemp(_Reading):
    type_name: ClassVar[str] = "site.b.temp"


class SiteAHumidity(_Reading):
    type_name: ClassVar[str] = "site.a.humidity"


class SiteABTemp(_Reading):
    type_name: ClassVar[str] = "site.a.b.temp"


class Site(_Reading):
    type_name: ClassVar[str] = "site"


class OtherATemp(_Reading):
    type_name: ClassVar[str] = "other.a.temp"


KINDS: tuple[type[_Reading], ...] = (
    SiteATemp,
    SiteBTemp,
    SiteAHumidity,
    SiteABTemp,
    Site,
    OtherATemp,
)
ROUNDS = 5  # each kind this many times: 30 events, n = 0..29 in generation order


def _n(event: StoredEvent) -> int:
    return _Reading.model_validate_json(event.payload).n


def _types(events: list[StoredEvent]) -> list[str]:
    return [e.type_name for e in events]


@pytest.fixture
async def archive() -> AsyncIterator[Proactor]:
    """A gateway without an upstream link: its events are archived, queryable. Holds
    ``ROUNDS`` rounds of every kind, event ``n`` at ``T0 + n * STEP``."""
    gateway = Proactor(ProactorSettings(name="archive"), REGISTRY)
    async with running(gateway):
        n = 0
        for _ in range(ROUNDS):
            for kind in KINDS:
                result = await gateway.generate_event(kind(n=n, time_ns=T0 + n * STEP))
                assert isinstance(result, Ok)
                n += 1
        yield gateway


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("site.a.temp", {"site.a.temp"}),
        ("site.?.temp", {"site.a.temp", "site.b.temp"}),
        ("?.a.temp", {"site.a.temp", "other.a.temp"}),
        ("site.a.?", {"site.a.temp", "site.a.humidity"}),
        ("site.?.?.temp", {"site.a.b.temp"}),
        ("?", {"site"}),
        ("site.a.*", {"site.a.temp", "site.a.humidity", "site.a.b.temp"}),
        ("site.*", {"site", "site.a.temp", "site.b.temp", "site.a.humidity", "site.a.b.temp"}),
        ("*", {kind.type_name for kind in KINDS}),
        ("site.c.*", set()),
    ],
)
async def test_query_by_type_pattern(archive: Proactor, pattern: str, expected: set[str]) -> None:
    events = await archive.query_events(pattern, limit=1000)
    assert set(_types(events)) == expected
    assert len(events) == ROUNDS * len(expected)
    ns = [_n(e) for e in events]
    assert ns == sorted(ns)  # oldest first
    assert all(not e.pending and e.src == "archive" for e in events)


async def test_invalid_patterns_and_limits_raise(archive: Proactor) -> None:
    for pattern in ("site.*.temp", "site.te*", "site..a", ""):
        with pytest.raises(ValueError, match="invalid type pattern"):
            await archive.query_events(pattern)
    with pytest.raises(ValueError, match="limit"):
        await archive.query_events(limit=0)


async def test_query_by_time_range_and_limit(archive: Proactor) -> None:
    # start_ns is inclusive, end_ns exclusive.
    events = await archive.query_events(start_ns=T0 + 10 * STEP, end_ns=T0 + 20 * STEP, limit=100)
    assert [_n(e) for e in events] == list(range(10, 20))
    assert [_n(e) for e in await archive.query_events(start_ns=T0 + 25 * STEP)] == list(
        range(25, 30)
    )
    assert [_n(e) for e in await archive.query_events(end_ns=T0 + 3 * STEP)] == [0, 1, 2]
    assert await archive.query_events(start_ns=T0 + 30 * STEP) == []
    # The limit keeps the oldest matches; it combines with the pattern and the range.
    assert [_n(e) for e in await archive.query_events(limit=4)] == [0, 1, 2, 3]
    combined = await archive.query_events(
        "site.?.temp", start_ns=T0 + 6 * STEP, end_ns=T0 + 25 * STEP, limit=3
    )
    assert [(e.type_name, _n(e)) for e in combined] == [
        ("site.a.temp", 6),
        ("site.b.temp", 7),
        ("site.a.temp", 12),
    ]
    assert len(await archive.query_events("site.?.temp", limit=1000)) == 2 * ROUNDS


def _pair(broker: Mosquitto) -> tuple[Proactor, Proactor]:
    parent_settings, child_settings = pair_settings(
        BrokerSettings(port=broker.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5)
    )
    return Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)


async def test_query_pending_events_on_the_child_and_received_ones_on_the_parent(
    mosquitto: Mosquitto,
) -> None:
    parent, child = _pair(mosquitto)
    async with running(child):
        for n in range(10):
            assert (await child.generate_event(Counted(n=n, time_ns=T0 + n * STEP))).is_ok()
        pending = await child.query_events(Counted.type_name, pending=True)
        assert [Counted.model_validate_json(e.payload).n for e in pending] == list(range(10))
        assert await child.query_events(Counted.type_name, pending=False) == []
        with child.listener("event.acked") as acked:
            async with running(parent):
                await wait_until(lambda: child.store.pending_count == 0, acked, TIMEOUT)
                received = await parent.query_events(
                    "test.?", start_ns=T0 + 2 * STEP, end_ns=T0 + 8 * STEP, limit=4
                )
        assert await child.query_events(Counted.type_name, pending=True) == []
    # The parent keeps the child's ids, sources and timestamps.
    assert [Counted.model_validate_json(e.payload).n for e in received] == [2, 3, 4, 5]
    assert [e.time_ns for e in received] == [T0 + n * STEP for n in (2, 3, 4, 5)]
    assert {e.src for e in received} == {"child"}
    assert not any(e.pending for e in received)
    assert {e.event_id for e in received} <= {e.event_id for e in pending}


# -- listeners --------------------------------------------------------------------------------


@pytest.fixture
async def pair(mosquitto: Mosquitto) -> AsyncIterator[tuple[Proactor, Proactor]]:
    """A running parent and child, both links active; the parent has a recorder ``rx``."""
    parent, child = _pair(mosquitto)
    parent.add_communicator(Recorder("rx", parent))
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        yield parent, child


def _hello(child: Proactor, n: int) -> None:
    assert child.send_to_peer("parent", Hello(n=n), actor="rx").is_ok()


def _hello_n(event: CommEvent) -> int:
    payload = event.data["message"].payload
    assert isinstance(payload, Hello)
    return payload.n


async def test_listener_hears_only_while_registered(pair: tuple[Proactor, Proactor]) -> None:
    parent, child = pair
    outside = parent.listener("message.received")
    # Another listener that stays registered tells when each message has been handled.
    with parent.listener("message.received") as barrier:
        _hello(child, 0)
        assert _hello_n(await barrier.get(TIMEOUT)) == 0
        assert outside.empty()
        with outside:
            _hello(child, 1)
            assert _hello_n(await barrier.get(TIMEOUT)) == 1
            assert _hello_n(await outside.get(TIMEOUT)) == 1
        _hello(child, 2)
        assert _hello_n(await barrier.get(TIMEOUT)) == 2
    assert outside.empty()
    assert [_hello_n(e) for e in outside.history] == [1]
    assert not parent.hub  # nobody listens any more: emitting costs nothing


async def test_async_iteration_and_get_with_timeout(pair: tuple[Proactor, Proactor]) -> None:
    parent, child = pair
    with parent.listener("message.received") as heard:
        with pytest.raises(TimeoutError):
            await heard.get(0.05)  # nothing yet
        for n in range(5):
            _hello(child, n)
        seen: list[int] = []
        async with asyncio.timeout(TIMEOUT):
            async for event in heard:
                seen.append(_hello_n(event))
                if len(seen) == 5:
                    break
        assert seen == list(range(5))
        assert heard.empty()
        with pytest.raises(TimeoutError):
            await heard.get(0.05)


async def test_filter_by_names_and_predicate(pair: tuple[Proactor, Proactor]) -> None:
    parent, child = pair

    def even(event: CommEvent) -> bool:
        return _hello_n(event) % 2 == 0

    with (
        parent.listener("message.received", even) as evens,
        parent.listener(("message.dispatched", "message.received")) as both,
        parent.listener("link.state") as states,
    ):
        for n in range(6):
            _hello(child, n)
        await wait_until(lambda: len(both.history) == 12, both, TIMEOUT)
        assert [_hello_n(e) for e in evens.history] == [0, 2, 4]
        assert [_hello_n(await evens.get(TIMEOUT)) for _ in range(3)] == [0, 2, 4]
        assert evens.empty()
        assert {e.name for e in both.history} == {"message.dispatched", "message.received"}
        # Each message is received before it is dispatched to its actor.
        received = [_hello_n(e) for e in both.history if e.name == "message.received"]
        dispatched = [_hello_n(e) for e in both.history if e.name == "message.dispatched"]
        assert received == dispatched == list(range(6))
        assert {e.source for e in both.history if e.name == "message.dispatched"} == {"rx"}
        # wait_for skips what does not match, until something does.
        _hello(child, 6)
        _hello(child, 7)
        last = await both.wait_for(
            lambda e: e.name == "message.dispatched" and _hello_n(e) == 7, TIMEOUT
        )
        assert _hello_n(last) == 7
    # Names it does not listen to never reach a listener: the links stayed active.
    assert list(states.history) == []


async def test_history_is_bounded_and_kept_after_the_queue_is_cleared(
    pair: tuple[Proactor, Proactor],
) -> None:
    parent, child = pair
    with parent.listener("message.received", history=3) as recent:
        for n in range(5):
            _hello(child, n)
        assert [_hello_n(await recent.get(TIMEOUT)) for _ in range(2)] == [0, 1]
        await wait_until(lambda: _hello_n(recent.history[-1]) == 4, recent, TIMEOUT)
        assert [_hello_n(e) for e in recent.history] == [2, 3, 4]
        recent.clear()
        assert recent.empty()
        assert [_hello_n(e) for e in recent.history] == [2, 3, 4]


async def test_an_unread_listener_keeps_only_the_newest_events(
    pair: tuple[Proactor, Proactor],
) -> None:
    """A listener nobody reads is bounded: the oldest queued events go, counted."""
    parent, child = pair
    with (
        parent.listener("message.received", max_queued=3) as unread,
        parent.listener("message.received") as all_of_them,
    ):
        for n in range(8):
            _hello(child, n)
        await wait_until(lambda: len(all_of_them.history) == 8, all_of_them, TIMEOUT)
        assert unread.dropped == 5
        assert [_hello_n(await unread.get(TIMEOUT)) for _ in range(3)] == [5, 6, 7]
        assert unread.empty()
        assert [_hello_n(e) for e in unread.history] == list(range(8))
