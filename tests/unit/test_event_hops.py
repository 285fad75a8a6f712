"""An awaited generate_event costs the loop few scheduled callbacks (issue 15).

The loop thread's CPU per awaited event is mostly loop iterations and the callbacks they
run. Counting the callbacks scheduled on the loop (``call_soon`` and
``call_soon_threadsafe``) while events are generated one at a time pins the number of hops
from the writer thread's commit to the awaiting task, independently of the machine's speed.
Before the store called back directly, each event took 4: the batch outcome, the inner
future's done-callback, the task's wake-up and the uncommitted counter's done-callback.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest
from result import Ok

from gwproactor import BrokerSettings, Proactor, ProactorSettings
from gwproactor.mqtt import MemoryBroker
from gwproactor.store import StoreSettings
from tests.helpers import REGISTRY, Counted, memory_factory, pair_settings, running

EVENTS = 200
# Now 1 per event (the task's wake-up: the batch outcome comes through the store's eventfd,
# a reader callback; see gwproactor.store._mailbox); 2 before that (the batch outcome's
# call_soon_threadsafe), 4 before that. Without eventfd (not Linux) still 2. The slack is
# for the gateway's own timers that fire meanwhile.
MAX_CALLBACKS_PER_EVENT = 1.5 if hasattr(os, "eventfd") else 3.0


def _count_callbacks(loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counter = [0]
    for name in ("call_soon", "call_soon_threadsafe"):
        original: Callable[..., Any] = getattr(loop, name)

        def counted(*args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            counter[0] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(loop, name, counted)
    return counter


async def _callbacks_per_event(proactor: Proactor, monkeypatch: pytest.MonkeyPatch) -> float:
    for n in range(10):  # warm: the store open, the first batch committed
        assert isinstance(await proactor.generate_event(Counted(n=n)), Ok)
    counter = _count_callbacks(asyncio.get_running_loop(), monkeypatch)
    for n in range(EVENTS):
        assert isinstance(await proactor.generate_event(Counted(n=n)), Ok)
    callbacks = counter[0]
    monkeypatch.undo()
    assert proactor.events.uncommitted == 0
    return callbacks / EVENTS


def _fast_store(settings: ProactorSettings) -> ProactorSettings:
    # No fsync per commit: the test is about the loop's hops, not the disk.
    return settings.model_copy(update={"store": StoreSettings(durability="normal")})


async def test_archived_event_hops(monkeypatch: pytest.MonkeyPatch) -> None:
    proactor = Proactor(_fast_store(ProactorSettings(name="solo")), REGISTRY)
    async with running(proactor):
        per_event = await _callbacks_per_event(proactor, monkeypatch)
    assert per_event <= MAX_CALLBACKS_PER_EVENT, per_event


async def test_pending_event_hops(monkeypatch: pytest.MonkeyPatch) -> None:
    # An upstream link that never becomes active (no parent): each event is committed as
    # pending and handed to the uploader, which holds it.
    _, child_settings = pair_settings(BrokerSettings())
    child = Proactor(
        _fast_store(child_settings), REGISTRY, transport_factory=memory_factory(MemoryBroker())
    )
    async with running(child):
        per_event = await _callbacks_per_event(child, monkeypatch)
        assert child.store.pending_count == EVENTS + 10
    assert per_event <= MAX_CALLBACKS_PER_EVENT, per_event


async def test_no_running_loop_lookup_per_event(monkeypatch: pytest.MonkeyPatch) -> None:
    # asyncio.get_running_loop() makes a getpid() system call each time (it checks for a
    # fork): generate_event uses the loop it was started on. Was 1 call per event.
    proactor = Proactor(_fast_store(ProactorSettings(name="solo")), REGISTRY)
    async with running(proactor):
        for n in range(10):
            assert isinstance(await proactor.generate_event(Counted(n=n)), Ok)
        lookups = [0]
        original = asyncio.get_running_loop

        def counted() -> asyncio.AbstractEventLoop:
            lookups[0] += 1
            return original()

        monkeypatch.setattr(asyncio, "get_running_loop", counted)
        for n in range(EVENTS):
            assert isinstance(await proactor.generate_event(Counted(n=n)), Ok)
        monkeypatch.undo()
    assert lookups[0] == 0, lookups[0]
