"""Dispatch, failing actors and thread actors, on the in-memory transport (fast layer)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from gwproactor import (
    BrokerSettings,
    Message,
    Proactor,
    ProactorSettings,
    ServicesInterface,
    SyncAsyncInteractionThread,
    SyncThreadActor,
)
from gwproactor.mqtt import MemoryBroker
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Hello,
    Raiser,
    Recorder,
    Reply,
    memory_factory,
    pair_settings,
    running,
    wait_active,
    wait_until,
)


class DoublerThread(SyncAsyncInteractionThread):
    """Answers each Hello(n) with Reply(2n) to the collector, from its own thread."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__("doubler", iterate_seconds=3600.0, pat_timeout_seconds=5.0)
        self.gate = gate
        self.thread_ids: set[int] = set()

    def _ext_handle_message(self, message: Any) -> None:
        self.thread_ids.add(threading.get_ident())
        self.gate.wait(TIMEOUT)
        n = message.payload.n
        self._ext_send_to_loop(Message.create("doubler", "collector", Reply(n=2 * n)))


class Doubler(SyncThreadActor):
    def __init__(self, name: str, services: ServicesInterface, gate: threading.Event) -> None:
        self.gate = gate
        super().__init__(name, services)

    def make_thread(self) -> SyncAsyncInteractionThread:
        return DoublerThread(self.gate)


async def test_thread_actor_round_trip_and_bounded_join() -> None:
    proactor = Proactor(ProactorSettings(name="gw1", stop_timeout_seconds=2.0))
    gate = threading.Event()
    doubler = Doubler("doubler", proactor, gate)
    collector = Recorder("collector", proactor)
    proactor.add_communicator(doubler)
    proactor.add_communicator(collector)
    with proactor.listener("message.dispatched", lambda e: e.source == "collector") as heard:
        await proactor.start()
        for n in range(100):  # the thread is held at the gate while these queue up
            proactor.send(Message.create("test", "doubler", Hello(n=n)))
        gate.set()
        await wait_until(lambda: len(collector.received) == 100, heard, TIMEOUT)
    assert [m.payload.n for m in collector.received] == [2 * n for n in range(100)]
    thread = doubler.thread
    assert isinstance(thread, DoublerThread)
    assert thread.thread_ids == {thread.ident}
    assert thread.ident != threading.get_ident()
    # Everything waiting was drained in a handful of wake-ups, with no iteration due.
    assert thread.handled == 100
    assert thread.iterations == 1
    assert thread.turns <= 5
    started = time.monotonic()
    await proactor.stop_and_join()
    assert not thread.is_alive()
    assert time.monotonic() - started < 2.0


class CountingThread(SyncAsyncInteractionThread):
    """Resolves a future on the loop once it has iterated ``target`` times."""

    def __init__(self, target: int, reached: asyncio.Future[None]) -> None:
        super().__init__("idle", iterate_seconds=0.02)
        self.target = target
        self.reached = reached
        self.loop = asyncio.get_running_loop()

    def _ext_iterate(self) -> None:
        if self.iterations + 1 == self.target:
            self.loop.call_soon_threadsafe(self.reached.set_result, None)


async def test_idle_thread_does_not_spin() -> None:
    reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    thread = CountingThread(10, reached)
    proactor = Proactor(ProactorSettings(name="gw1"))
    proactor.add_communicator(SyncThreadActor("idle", proactor, thread))
    async with running(proactor):
        await asyncio.wait_for(reached, TIMEOUT)
    # One wake-up per iteration (a spinning or polling thread would have many more).
    assert thread.turns <= thread.iterations + 2


class SlowIteratingThread(SyncAsyncInteractionThread):
    """Iterates once an hour, like the relay's periodic read; no messages come."""

    def __init__(self, pats_wanted: int, reached: asyncio.Future[None]) -> None:
        super().__init__(
            "slow", iterate_seconds=3600.0, pat_timeout_seconds=0.4, on_pat=self._count
        )
        self.pats = 0
        self.pats_wanted = pats_wanted
        self.reached = reached
        self.loop = asyncio.get_running_loop()

    def _count(self, _name: str) -> None:
        self.pats += 1
        if self.pats == self.pats_wanted:
            self.loop.call_soon_threadsafe(self.reached.set_result, None)


async def test_an_idle_thread_pats_within_its_timeout_whatever_its_iterate_period() -> None:
    """An hour between iterations and no messages: the thread still pats every half pat
    timeout (it waited an hour, and the watchdog declared a healthy idle thread stalled:
    the relay actor during a broker outage, and systemd's watchdog withheld)."""
    reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    thread = SlowIteratingThread(4, reached)
    proactor = Proactor(ProactorSettings(name="gw1"))
    proactor.add_communicator(SyncThreadActor("slow", proactor, thread))
    async with running(proactor):
        await asyncio.wait_for(reached, TIMEOUT)
        assert not proactor.watchdog.stalled_names
    assert thread.iterations == 1


async def test_failing_actor_does_not_disturb_the_others() -> None:
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings())
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    good = Recorder("good", child)
    bad = Raiser("bad", child)
    child.add_communicator(good)
    child.add_communicator(bad)
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        with child.listener("message.dispatched", lambda e: e.source == "good") as heard:
            for n in range(200):
                parent.send_to_peer("child", Hello(n=n), actor="bad" if n % 2 else "good")
            await wait_until(lambda: len(good.received) == 100, heard, TIMEOUT)
        with child.listener("problem") as problems:
            parent.send_to_peer("child", Hello(n=999), actor="bad")
            parent.send_to_peer("child", Hello(n=1000), actor="good")
            with child.listener("message.dispatched") as heard_more:
                await wait_until(lambda: len(good.received) == 101, heard_more, TIMEOUT)
        assert bad.calls == 101
        assert child.stats.handler_errors["bad"] == 101
        assert child.state == "running"
        assert [m.payload.n for m in good.received] == [*range(0, 200, 2), 1000]
        # Reports are rate-limited: one logged problem, the rest counted.
        assert child.stats.problems_reported == 101
        assert len(problems.history) == 0  # the first report came before this listener


async def test_unroutable_message_is_counted_and_reported() -> None:
    proactor = Proactor(ProactorSettings(name="gw1"))
    with proactor.listener("problem") as problems:
        async with running(proactor):
            proactor.send(Message.create("x", "nobody", Hello(n=1)))
            event = await problems.get(TIMEOUT)
    assert "unroutable" in event.source
    assert proactor.stats.unroutable == {"unknown_destination": 1}
