"""A store that refuses received events does not flood the log while the child re-sends.

Each refusal leaves the event un-acked (the child sends it again later); it is counted and
reported through the rate-limited problem reporter: one ERROR line per interval, not one
per event per re-send.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from result import Err

from gwproactor import BrokerSettings, Proactor, StoreError
from gwproactor.mqtt import MemoryBroker
from tests.helpers import REGISTRY, TIMEOUT, Counted, memory_factory, pair_settings, running

EVENTS = 20


async def test_refused_received_events_are_reported_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings())
    parent_settings = parent_settings.model_copy(update={"problem_report_interval_seconds": 3600.0})
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    refused = 0
    all_refused = asyncio.Event()

    def refuse(*_args: Any, **_kwargs: Any) -> asyncio.Future[Any]:
        nonlocal refused
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(Err(StoreError("disk says no")))
        refused += 1
        if refused >= EVENTS:
            # After the manager's done-callback, which the caller adds once this returns.
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, all_refused.set)
        return future

    parent.store.record_received = refuse  # type: ignore[method-assign]
    caplog.set_level(logging.INFO)
    async with running(parent, child):
        for n in range(EVENTS):
            (await child.generate_event(Counted(n=n))).unwrap()
        await asyncio.wait_for(all_refused.wait(), TIMEOUT)
        count = parent.problems.count("events.store_received")
    lines = [r for r in caplog.records if "could not store" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.ERROR
    assert count >= EVENTS
    assert parent.stats.problems_by_kind["store"] >= EVENTS
