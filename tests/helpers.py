"""Shared test pieces: message types, recording actors, gateway settings, run helpers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any, ClassVar

from result import Err, Ok, Result

from gwproactor import (
    BrokerSettings,
    Communicator,
    Event,
    LinkSettings,
    Message,
    MessageRegistry,
    Payload,
    Proactor,
    ProactorSettings,
    ServicesInterface,
)
from gwproactor.links import Link
from gwproactor.mqtt import MemoryBroker, MemoryTransport, Transport, TransportListener
from gwproactor.observe.listeners import CommEvent

TIMEOUT = 10.0


class Hello(Payload):
    type_name: ClassVar[str] = "test.hello"
    n: int
    text: str = ""


class Reply(Payload):
    type_name: ClassVar[str] = "test.reply"
    n: int


REGISTRY = MessageRegistry(Hello, Reply)


class Recorder(Communicator):
    """Records every message; optionally answers Hello with Reply to the sender's actor."""

    def __init__(
        self, name: str, services: ServicesInterface, *, reply_link: str = "", reply_actor: str = ""
    ) -> None:
        super().__init__(name, services)
        self.received: list[Message[Any]] = []
        self.reply_link = reply_link
        self.reply_actor = reply_actor

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        self.received.append(message)
        if self.reply_link and isinstance(message.payload, Hello):
            return self.services.send_to_peer(
                self.reply_link, Reply(n=message.payload.n), actor=self.reply_actor
            ).map(lambda _: None)
        return Ok(None)


class Raiser(Communicator):
    """Fails on every message: half by raising, half by returning Err."""

    def __init__(self, name: str, services: ServicesInterface) -> None:
        super().__init__(name, services)
        self.calls = 0

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        self.calls += 1
        if self.calls % 2:
            raise RuntimeError(f"boom {self.calls}")
        return Err(ValueError(f"refused {self.calls}"))


def pair_settings(
    broker: BrokerSettings,
    *,
    parent: str = "parent",
    child: str = "child",
    **link_overrides: Any,
) -> tuple[ProactorSettings, ProactorSettings]:
    """A parent with a downstream link to a child, and the child's upstream link."""
    down = LinkSettings(peer=child, role="downstream", broker=broker, **link_overrides)
    up = LinkSettings(peer=parent, role="upstream", broker=broker, **link_overrides)
    return (
        ProactorSettings(name=parent, links={"child": down}),
        ProactorSettings(name=child, links={"parent": up}),
    )


def memory_factory(broker: MemoryBroker) -> Callable[[Link, TransportListener], Transport]:
    def factory(link: Link, listener: TransportListener) -> Transport:
        return MemoryTransport(broker, listener, stats=link.stats)

    return factory


def is_state(new: str, link: str | None = None) -> Callable[[CommEvent], bool]:
    return lambda e: (
        e.name == "link.state" and e.data["new"] == new and (link is None or e.source == link)
    )


async def wait_active(proactor: Proactor, link: str, timeout: float = TIMEOUT) -> None:
    """Return once ``link`` is active (at once if it already is)."""
    with proactor.listener("link.state") as listener:
        if proactor.link(link).active:
            return
        await listener.wait_for(is_state("active", link), timeout)


@contextlib.asynccontextmanager
async def running(*proactors: Proactor) -> AsyncIterator[None]:
    """Start proactors in order; stop them in reverse, whatever happens."""
    started: list[Proactor] = []
    try:
        for proactor in proactors:
            await proactor.start()
            started.append(proactor)
        yield
    finally:
        for proactor in reversed(started):
            await asyncio.wait_for(proactor.stop_and_join(), TIMEOUT)


async def wait_until(predicate: Callable[[], bool], listener_source: Any, timeout: float) -> None:
    """Await comm events from ``listener_source`` (an EventListener) until ``predicate``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise TimeoutError("condition not reached")
        await listener_source.get(left)


class Counted(Event):
    """An event that carries its generation number, to check order and completeness."""

    type_name: ClassVar[str] = "test.counted"
    n: int


REGISTRY.register(Counted)


class EventRecorder(Communicator):
    """Records the events routed to it (the proactor hands over only new ones)."""

    def __init__(self, name: str, services: ServicesInterface) -> None:
        super().__init__(name, services)
        self.events: list[Any] = []

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        self.events.append(message.payload)
        return Ok(None)


def record_events(proactor: Proactor, name: str = "recorder") -> EventRecorder:
    """An :class:`EventRecorder` added to ``proactor`` and routed every ``Counted`` event."""
    recorder = EventRecorder(name, proactor)
    proactor.add_communicator(recorder)
    proactor.route(Counted.type_name, name)
    return recorder


def count_opcodes(run: Callable[[], object]) -> int:
    """Python bytecode instructions executed by ``run`` (C code counts as one call).

    Garbage from earlier tests is collected first and the collector is off while ``run``
    runs: a collection in the middle would run finalizers (a socket's ``__del__``, a
    ResourceWarning through the warnings module) inside the trace and count thousands of
    instructions that ``run`` never executed (seen: 3,910 instead of 420 in a full run)."""
    count = 0

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        frame.f_trace_opcodes = True
        if event == "opcode":
            count += 1
        return trace

    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    sys.settrace(trace)
    try:
        run()
    finally:
        sys.settrace(None)
        if was_enabled:
            gc.enable()
    return count
