"""GET /events: patterns, limits, time range, pending/archived, and 400 on bad parameters."""

from __future__ import annotations

import time
from typing import ClassVar

import aiohttp
import pytest

from gwproactor import Event, MessageRegistry, Proactor
from gwproactor.mqtt import MemoryBroker
from tests.helpers import TIMEOUT, Counted, running, wait_active, wait_until
from tests.web._support import get_json, memory_gateway, web_settings


class Reading(Event):
    type_name: ClassVar[str] = "test.sensor.reading"
    celsius: float


def _registry() -> MessageRegistry:
    return MessageRegistry(Counted, Reading)


async def _generate(proactor: Proactor) -> tuple[int, int]:
    """3 Counted and 2 Reading events, interleaved; returns the (start, end) ns around them."""
    start = time.time_ns()
    for n in range(3):
        assert (await proactor.generate_event(Counted(n=n))).is_ok()
        if n < 2:
            assert (await proactor.generate_event(Reading(celsius=20.5 + n))).is_ok()
    return start, time.time_ns() + 1


async def test_events_by_pattern_limit_and_time(http: aiohttp.ClientSession) -> None:
    # An upstream link with no parent: the events stay pending in the store.
    child = memory_gateway(web_settings(), MemoryBroker(), _registry())
    async with running(child):
        start, end = await _generate(child)
        status, events = await get_json(http, child, "/events")
        assert status == 200
        assert [e["type_name"] for e in events] == [
            "test.counted",
            "test.sensor.reading",
            "test.counted",
            "test.sensor.reading",
            "test.counted",
        ]
        first = events[0]
        assert first["src"] == "child"
        assert first["pending"] is True
        assert first["payload"]["n"] == 0
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

        _, counted = await get_json(http, child, "/events", params={"pattern": "test.counted"})
        assert [e["payload"]["n"] for e in counted] == [0, 1, 2]
        _, readings = await get_json(http, child, "/events", params={"pattern": "test.?.reading"})
        assert [e["payload"]["celsius"] for e in readings] == [20.5, 21.5]
        _, everything = await get_json(http, child, "/events", params={"pattern": "test.*"})
        assert len(everything) == 5
        _, none = await get_json(http, child, "/events", params={"pattern": "gw.*"})
        assert none == []
        _, two = await get_json(http, child, "/events", params={"limit": "2"})
        assert [e["seq"] for e in two] == [e["seq"] for e in events[:2]]

        middle = events[2]["time_ns"]
        window = {"start_ns": str(middle), "end_ns": str(end)}
        _, later = await get_json(http, child, "/events", params=window)
        assert [e["event_id"] for e in later] == [e["event_id"] for e in events[2:]]
        _, before = await get_json(http, child, "/events", params={"end_ns": str(start)})
        assert before == []
        _, archived = await get_json(http, child, "/events", params={"pending": "false"})
        assert archived == []


async def test_events_received_from_a_child_are_archived(http: aiohttp.ClientSession) -> None:
    broker = MemoryBroker()
    parent = memory_gateway(
        web_settings("parent", upstream=None, downstream="child"), broker, _registry()
    )
    child = memory_gateway(web_settings("child", web={"enabled": False}), broker, _registry())
    async with running(parent, child):
        await wait_active(child, "parent")
        with child.listener("event.acked") as acks:
            await _generate(child)
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
        _, archived = await get_json(
            http, parent, "/events", params={"pending": "false", "pattern": "test.counted"}
        )
        assert [(e["payload"]["n"], e["src"], e["pending"]) for e in archived] == [
            (0, "child", False),
            (1, "child", False),
            (2, "child", False),
        ]
        _, pending = await get_json(http, parent, "/events", params={"pending": "true"})
        assert [e["type_name"] for e in pending if e["type_name"].startswith("test.")] == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit must be between 1 and"),
        ("limit=ten", "limit must be an integer"),
        ("limit=100000000", "limit must be between 1 and"),
        ("start_ns=yesterday", "start_ns must be an integer"),
        ("start_ns=10&end_ns=5", "end_ns (5) is before start_ns (10)"),
        ("pattern=gw.*.state", "'*' is only allowed as the last level"),
        ("pattern=gw..x", "level 2 is empty"),
        ("pending=maybe", "pending must be true or false"),
        ("limt=3", "unknown parameter(s) limt"),
        ("limit=1&limit=2", "given more than once: limit"),
    ],
)
async def test_bad_parameters_are_400_with_a_clear_message(
    http: aiohttp.ClientSession, query: str, message: str
) -> None:
    child = memory_gateway(web_settings(), MemoryBroker())
    async with running(child):
        status, body = await get_json(http, child, f"/events?{query}")
    assert status == 400
    assert body["error"] == "bad_request"
    assert message in body["message"]
