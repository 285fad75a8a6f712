"""The writer thread's own work per commit of one awaited event stays small (issue 15).

An awaited ``generate_event`` is a batch of one: the writer's bookkeeping around the sqlite
calls is paid once per event. Counted in Python instructions run by the writer thread (the
machine's speed does not matter), for events appended or archived one at a time. Before the
counters were copied cheaply this was ~2,050 per event, ~1,400 of them in
``dataclasses.replace`` and ``StoreStats.add``; then ~800.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from result import Ok, Result

from gwproactor.errors import StoreError
from gwproactor.store import EventStore, StoreSettings

from ._support import PAYLOAD, SRC, TYPE, StoreFactory, eid, ok, store_factory, wait

EVENTS = 100
MAX_WRITER_OPCODES_PER_EVENT = 1_100


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    async with store_factory(tmp_path) as make:
        yield make


class WriterOpcodes:
    """Counts the Python instructions the store's writer thread runs while ``on``."""

    def __init__(self) -> None:
        self.count = 0
        self.on = False

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not threading.current_thread().name.startswith("store["):
            return None
        frame.f_trace_opcodes = True
        if event == "opcode" and self.on:
            self.count += 1
        return self.trace


async def _started_traced(make: StoreFactory, counter: WriterOpcodes) -> EventStore:
    # No fsync: the count does not depend on the disk (and the test stays fast).
    store, _ = make(StoreSettings(durability="normal"))
    threading.settrace(counter.trace)  # for the threads started from now on: the writer
    try:
        await wait(store.start())
    finally:
        threading.settrace(None)
    return store


async def _per_event(
    store: EventStore,
    counter: WriterOpcodes,
    one: Callable[[EventStore, int], asyncio.Future[Result[Any, StoreError]]],
) -> float:
    for i in range(10):  # warm: statements prepared, first pages cached
        ok(await wait(one(store, i)))
    gc.collect()
    gc.disable()  # a collection in the writer thread would count finalizers
    counter.on = True
    try:
        for i in range(10, 10 + EVENTS):
            assert isinstance(await wait(one(store, i)), Ok)
    finally:
        counter.on = False
        gc.enable()
    return counter.count / EVENTS


def _append(store: EventStore, i: int) -> asyncio.Future[Result[int, StoreError]]:
    return store.append(TYPE, eid(i), 1_000 + i, SRC, PAYLOAD)


def _archive(store: EventStore, i: int) -> asyncio.Future[Result[bool, StoreError]]:
    return store.record_received(TYPE, eid(i), 1_000 + i, SRC, PAYLOAD)


@pytest.mark.parametrize("one", [_append, _archive], ids=["append", "archive"])
async def test_writer_instructions_per_awaited_event(
    make_store: StoreFactory,
    one: Callable[[EventStore, int], asyncio.Future[Result[Any, StoreError]]],
) -> None:
    counter = WriterOpcodes()
    store = await _started_traced(make_store, counter)
    per_event = await _per_event(store, counter, one)
    assert per_event > 100, per_event  # the tracer saw the writer thread at all
    assert per_event <= MAX_WRITER_OPCODES_PER_EVENT, per_event
