"""The Proactor's own lifecycle on the in-memory transport (fast layer)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar

import pytest
from pydantic import field_validator
from result import Ok, Result

from gwproactor import (
    BrokerSettings,
    Communicator,
    Message,
    Payload,
    Proactor,
    ServicesInterface,
    StateError,
)
from gwproactor.actor.communicator import Runnable
from gwproactor.links import Link
from gwproactor.mqtt import MemoryBroker, MemoryTransport, Transport, TransportListener
from gwproactor.store import StoreState
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Recorder,
    is_state,
    memory_factory,
    pair_settings,
    running,
    wait_active,
    wait_until,
)


class StopsItsProactor(Communicator, Runnable):
    """Calls ``stop()`` on its proactor from its own start (the proactor is then starting:
    links and the dispatcher started, the web servers and watchdogs not yet)."""

    def __init__(self, name: str, services: ServicesInterface, proactor: Proactor) -> None:
        super().__init__(name, services)
        self.proactor = proactor

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        return Ok(None)

    def start(self) -> None:
        self.proactor.stop()

    def stop(self) -> None:
        pass

    async def join(self) -> None:
        pass


async def test_stop_while_starting_ends_the_start_and_leaves_nothing_running() -> None:
    """Before: a shutdown ran beside the start, which went on starting the parts it had
    already passed (the dispatch task, watchdogs, a web server left running) and then
    raised 'cannot go from stopping to running'."""
    parent, _ = pair_settings(BrokerSettings())
    parent.web.enabled = True
    parent.web.port = 0
    proactor = Proactor(parent, REGISTRY, transport_factory=memory_factory(MemoryBroker()))
    proactor.add_communicator(StopsItsProactor("stopper", proactor, proactor))
    before = asyncio.all_tasks()
    with pytest.raises(StateError, match="stopped while starting"):
        await asyncio.wait_for(proactor.start(), TIMEOUT)
    await asyncio.wait_for(proactor.join(), TIMEOUT)
    assert proactor.state == "stopped"
    assert proactor.links["child"].state.value == "stopped"
    left = {t.get_name() for t in asyncio.all_tasks() - before if not t.done()}
    left.discard(asyncio.current_task().get_name())  # type: ignore[union-attr]
    assert left == set()


class BrokenStop(MemoryTransport):
    """A transport whose stop fails with an unexpected error."""

    async def stop(self, timeout: float = 5.0) -> None:
        await super().stop(timeout)
        raise RuntimeError("transport bug")


async def test_a_part_that_fails_to_stop_does_not_keep_the_others_running() -> None:
    """Before: the link's RuntimeError escaped the stopping sequence; the store stayed open,
    the instance lock held, and join() never returned (the proactor stuck in stopping)."""
    broker = MemoryBroker()
    parent, _ = pair_settings(BrokerSettings())

    def factory(link: Link, listener: TransportListener) -> Transport:
        return BrokenStop(broker, listener, stats=link.stats)

    proactor = Proactor(parent, REGISTRY, transport_factory=factory)
    await asyncio.wait_for(proactor.start(), TIMEOUT)
    await asyncio.wait_for(proactor.stop_and_join(), TIMEOUT)
    assert proactor.state == "stopped"
    assert proactor.store.state is StoreState.STOPPED


async def test_status_says_why_a_link_is_not_active() -> None:
    """A link that lost its broker shows the reason (and when) in /status, not only its
    state; it stays after reconnecting, as the last thing that went wrong."""
    broker = MemoryBroker()
    parent, child = pair_settings(BrokerSettings())
    factory = memory_factory(broker)
    p, c = (
        Proactor(parent, REGISTRY, transport_factory=factory),
        Proactor(child, REGISTRY, transport_factory=factory),
    )
    async with running(p, c):
        await wait_active(p, "child")
        assert p.status()["links"]["child"]["last_error"] is None
        with p.listener("link.state") as states:
            broker.stop()
            await states.wait_for(is_state("connecting", "child"), TIMEOUT)
        link = p.status()["links"]["child"]
        assert link["state"] == "connecting"
        assert link["last_error"] == "broker stopped"
        assert link["last_error_time"] > 0


async def test_a_peers_long_strings_make_no_long_problem_reports(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A header naming a 100,000-character source is a mismatch reported with the header's
    text: the log line, /status and the stored problem event carry a bounded part of it."""
    _, child = pair_settings(BrokerSettings())
    proactor = Proactor(child, REGISTRY, transport_factory=memory_factory(MemoryBroker()))
    header = {"src": "p" * 100_000, "dst": "child", "message_type": "test.hello", "message_id": "1"}
    data = json.dumps({"header": header, "payload": {"n": 1}}).encode()
    async with running(proactor):
        proactor.link("parent").on_transport_message("gw/parent/to/child/test.hello", data)
    problem = proactor.problems.recent[-1]
    assert "decode.mismatch" in problem.summary
    assert len(problem.details) <= 1_100
    assert max(len(r.getMessage()) for r in caplog.records) <= 1_500


async def test_stop_does_not_wait_for_a_connack_that_no_longer_matters() -> None:
    """A broker that accepts TCP and never answers CONNECT: stopping the gateway gives up
    the CONNACK at once. Before, each such link held the stop for its whole stop timeout
    (links stop one after the other: N silent brokers, N timeouts)."""
    got_connect = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read(1)  # the CONNECT packet's first byte
        got_connect.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, child = pair_settings(BrokerSettings(port=port, connect_timeout_seconds=60.0))
    child.stop_timeout_seconds = 20.0
    proactor = Proactor(child, REGISTRY)
    try:
        await asyncio.wait_for(proactor.start(), TIMEOUT)
        await asyncio.wait_for(got_connect.wait(), TIMEOUT)
        started = time.monotonic()
        await asyncio.wait_for(proactor.stop_and_join(), 60)
        assert time.monotonic() - started < 8.0  # was the stop timeout (20 s)
        assert proactor.stats.link("parent").connect_failures == 0  # stopping is no failure
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


class Touchy(Payload):
    """A subscriber's model whose validator has a bug: it raises KeyError (which pydantic
    does not turn into a ValidationError) for some input."""

    type_name: ClassVar[str] = "test.touchy"
    value: dict[str, int]

    @field_validator("value")
    @classmethod
    def _needs_x(cls, value: dict[str, int]) -> dict[str, int]:
        value["x"]
        return value


async def test_a_bug_on_the_receive_path_is_reported_and_the_next_message_flows() -> None:
    """An exception past the codec (here a subscriber model's validator) is counted and
    reported as a link problem. Before, it escaped into the transport's read callback: a
    traceback from the loop, and on a real socket the rest of the read batch waited for
    the next packet (and its PUBACK was never sent)."""
    broker = MemoryBroker()
    parent, child = pair_settings(BrokerSettings())
    factory = memory_factory(broker)
    p = Proactor(parent, REGISTRY, transport_factory=factory)
    c = Proactor(child, REGISTRY, transport_factory=factory)
    rx = Recorder("rx", c)
    c.add_communicator(rx)
    c.subscribe_raw("parent", "dev/#", "rx", payload_type=Touchy)
    errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        async with running(p, c):
            await wait_active(c, "parent")
            with c.listener("message.dispatched") as dispatched:
                p.publish_raw("child", "dev/1", b'{"value": {"y": 1}}')
                p.publish_raw("child", "dev/2", b'{"value": {"x": 2}}')
                await wait_until(lambda: len(rx.received) == 1, dispatched, TIMEOUT)
    finally:
        loop.set_exception_handler(None)
    assert rx.received[0].payload.topic == "dev/2"
    assert errors == []
    problem = next(p for p in c.problems.recent if "receive_error" in p.summary)
    assert "KeyError" in problem.details
