"""A store that refuses received events does not flood the log while the child re-sends.

Each refusal leaves the event un-acked (the child sends it again later); it is counted and
reported through the rate-limited problem reporter: one ERROR line per interval, not one
per event per re-send. A store op that fails outright (its future ends with an exception)
takes the same path: no "Exception in callback" traceback from the loop.
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


async def _refused(failure: Err[StoreError] | BaseException) -> tuple[Proactor, int]:
    """A parent whose store answers ``failure`` to every received event; a child that
    generates :data:`EVENTS` events. Returns the parent and its store_received count."""
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings())
    parent_settings = parent_settings.model_copy(update={"problem_report_interval_seconds": 3600.0})
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    refused = 0
    all_refused = asyncio.Event()

    def refuse(*_args: Any, **_kwargs: Any) -> asyncio.Future[Any]:
        nonlocal refused
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if isinstance(failure, BaseException):
            future.set_exception(failure)
        else:
            future.set_result(failure)
        refused += 1
        if refused >= EVENTS:
            # After the manager's done-callback, which the caller adds once this returns.
            loop.call_soon(loop.call_soon, all_refused.set)
        return future

    parent.store.record_received = refuse  # type: ignore[method-assign]
    async with running(parent, child):
        for n in range(EVENTS):
            (await child.generate_event(Counted(n=n))).unwrap()
        await asyncio.wait_for(all_refused.wait(), TIMEOUT)
        count = parent.problems.count("events.store_received")
    return parent, count


async def test_refused_received_events_are_reported_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    parent, count = await _refused(Err(StoreError("disk says no")))
    lines = [r for r in caplog.records if "could not store" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.ERROR
    assert count >= EVENTS
    assert parent.stats.problems_by_kind["store"] >= EVENTS


async def test_a_store_op_that_raises_is_reported_not_a_loop_traceback() -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        parent, count = await _refused(RuntimeError("writer thread died"))
    finally:
        loop.set_exception_handler(None)
    assert unhandled == []
    assert count >= EVENTS
    details = [p.details for p in parent.problems.recent if p.key == "events.store_received"]
    assert details, list(parent.problems.recent)
    assert "RuntimeError: writer thread died" in details[0]
