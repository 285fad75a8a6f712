"""The same end-to-end suite against every broker the fixtures can start: mosquitto, NATS
(MQTT over JetStream) and RabbitMQ (its MQTT plugin); see ``tests/support/interop.py``.

gwproactor's topics carry dotted message types (``gw/<src>/to/<dst>/gw.ping``). MQTT says a
``.`` is an ordinary character, but NATS before 2.10 closes the connection of a client that
publishes such a topic, and RabbitMQ delivers it with the ``.`` turned into a ``/`` (a new
topic level). So each gateway test runs on two wires:

* ``plain``: gwproactor as it is. On a broker with that known problem the test is a strict
  xfail that must fail with :class:`BrokerIncompatibility` (raised as soon as the symptom
  shows, with the evidence in its message); any other failure, or a pass, fails the run.
* ``escaped``: gwproactor with ``BrokerSettings.topic_dot_escape = "~"``: a ``.`` in a gw/
  topic travels as ``~``, which no gateway name can contain, and is restored on receipt.

Gateways are named per test: the session's RabbitMQ node keeps retained presence messages.

The suite found a gwproactor bug that was not about brokers: after a reconnect, paho re-sent
the QoS 1 PUBLISHes it still held before the uploader's ordered re-upload started, so an
actor could get events out of order (never twice). The gateway now drops them on CONNACK;
:func:`test_old_publishes_do_not_overtake_the_reupload_after_a_reconnect` reproduces the
old failure deterministically.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import secrets
import threading
import time
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any

import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion
from result import Ok, Result

from gwproactor import BrokerSettings, Proactor, StoreError
from gwproactor.observe.listeners import CommEvent, EventListener
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    EventRecorder,
    Hello,
    Recorder,
    is_state,
    pair_settings,
    record_events,
    running,
    wait_active,
    wait_until,
)
from tests.support.paho import close_client
from tests.support.proxy import PacketType

if TYPE_CHECKING:
    from gwproactor.testing.mosquitto import Mosquitto
    from tests.support.interop import InteropBroker
    from tests.support.proxy import FaultProxyFactory

pytestmark = pytest.mark.broker

Transition = tuple[str, str, str]

WATCH = ("link.state", "problem")
STARTED: list[Transition] = [
    ("not_started", "connecting", "start_called"),
    ("connecting", "awaiting_setup_and_peer", "mqtt_connected"),
]
# Activation: SUBACKs before the first message from the peer, or the other way round.
SUBSCRIBED_FIRST: list[Transition] = [
    *STARTED,
    ("awaiting_setup_and_peer", "awaiting_peer", "all_subscribed"),
    ("awaiting_peer", "active", "peer_message"),
]
PEER_FIRST: list[Transition] = [
    *STARTED,
    ("awaiting_setup_and_peer", "awaiting_setup", "peer_message"),
    ("awaiting_setup", "active", "all_subscribed"),
]
STOPPED: Transition = ("active", "stopped", "stop_called")

ESCAPE = "~"
NATS_REFUSAL = "not supported for MQTT topics"  # nats-server < 2.10 logs this, then hangs up
DROPS_BEFORE_GIVING_UP = 3
DRAIN_TIMEOUT = 30.0
OUTAGE_EVENTS = 1000
OUTAGE_CHUNK = 50
KILL_AT = 250  # events generated when the broker is killed
RESTART_AT = 600  # events generated when it is started again
BACKLOG = 2000


class BrokerIncompatibility(AssertionError):
    """The broker refused or rewrote gwproactor's dotted topics; the message says how."""


class EventsOutOfOrder(AssertionError):
    """Every event reached the actor exactly once, but not in generation order."""


def _assert_exactly_once_in_order(received: list[int], expected: list[int]) -> None:
    """Raise :class:`EventsOutOfOrder` if only the order is wrong, AssertionError otherwise."""
    if received != expected and sorted(received) == sorted(expected):
        i = next(i for i, (a, b) in enumerate(zip(received, expected, strict=True)) if a != b)
        raise EventsOutOfOrder(
            f"all {len(expected)} exactly once, but at index {i}: {received[max(0, i - 2) : i + 4]}"
        )
    assert received == expected


def _expect_dot_trouble(request: pytest.FixtureRequest, broker: InteropBroker) -> None:
    if broker.dotted_topics is not None:
        reason = f"{broker.kind} {broker.version} {broker.dotted_topics}"
        request.applymarker(
            pytest.mark.xfail(raises=BrokerIncompatibility, reason=reason, strict=True)
        )


@pytest.fixture(params=["plain", "escaped"])
def wire(request: pytest.FixtureRequest, any_broker: InteropBroker) -> str:
    """How gwproactor's topics travel; ``plain`` xfails where the broker breaks them."""
    if request.param == "plain":
        _expect_dot_trouble(request, any_broker)
    return str(request.param)


def _gateways(broker: InteropBroker, wire: str) -> tuple[Proactor, Proactor, EventRecorder]:
    """A parent and a child with names of their own; ``test.counted`` goes to a recorder."""
    tag = secrets.token_hex(3)
    parent_settings, child_settings = pair_settings(
        BrokerSettings(
            port=broker.port,
            reconnect_min_seconds=0.05,
            reconnect_max_seconds=0.5,
            topic_dot_escape=ESCAPE if wire == "escaped" else None,
        ),
        parent=f"parent-{tag}",
        child=f"child-{tag}",
    )
    parent = Proactor(parent_settings, REGISTRY)
    child = Proactor(child_settings, REGISTRY)
    recorder = record_events(parent)
    return parent, child, recorder


async def _until(
    proactor: Proactor, link: str, state: str, events: EventListener, broker: InteropBroker
) -> None:
    """Consume ``events`` (``link.state`` and ``problem``) until ``link`` is in ``state``.

    Fails fast with :class:`BrokerIncompatibility` on the known symptoms: a topic the codec
    cannot parse (RabbitMQ split a dotted level), or the broker hanging up and saying why in
    its log (NATS < 2.10). Raises TimeoutError after ``TIMEOUT``.
    """
    deadline = time.monotonic() + TIMEOUT
    drops = 0
    while proactor.link(link).state != state:
        event = await events.get(max(0.0, deadline - time.monotonic()))
        if event.name == "problem" and event.source.endswith("decode.topic"):
            raise BrokerIncompatibility(
                f"{broker}: {proactor.name} got a topic it cannot parse: {event.data['details']}"
            )
        if event.name == "link.state" and event.data["new"] == "connecting":
            if event.data["old"] == "not_started":
                continue
            drops += 1
            refusals = [line for line in broker.log_tail(200).splitlines() if NATS_REFUSAL in line]
            if refusals:
                raise BrokerIncompatibility(f"{broker} hung up on {proactor.name}: {refusals[-1]}")
            assert drops < DROPS_BEFORE_GIVING_UP, f"{proactor.name} keeps losing the broker"


async def _all(*waits: Coroutine[Any, Any, None]) -> None:
    """Await ``waits`` concurrently; the first failure cancels the others and propagates as
    it is (each side may be the first to see a broker's symptom)."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if (error := task.exception()) is not None:
                raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _transitions(events: Iterable[CommEvent]) -> list[Transition]:
    return [
        (e.data["old"], e.data["new"], e.data["cause"]) for e in events if e.name == "link.state"
    ]


async def _generate(child: Proactor, first: int, count: int) -> list[Result[str, StoreError]]:
    futures = (child.generate_event(Counted(n=n)) for n in range(first, first + count))
    return list(await asyncio.gather(*futures))


async def _drained(child: Proactor) -> None:
    """Return once the child's store has no pending event left (acks awaited, not polled)."""
    with child.listener("event.acked") as acked:
        await wait_until(lambda: child.store.pending_count == 0, acked, TIMEOUT)
    await child.store.flush()
    assert child.store.pending_count == 0


# -- the suite ------------------------------------------------------------------------------


async def test_activation_then_messages_both_ways(any_broker: InteropBroker, wire: str) -> None:
    parent, child, _ = _gateways(any_broker, wire)
    collector = Recorder("collector", parent)
    responder = Recorder("responder", child, reply_link="parent", reply_actor="collector")
    bystander = Recorder("bystander", child)
    parent.add_communicator(collector)
    child.add_communicator(responder)
    child.add_communicator(bystander)
    with parent.listener(WATCH) as p_log, child.listener(WATCH) as c_log:
        async with running(parent):
            # Subscribed while the child is absent: nothing can have come from it yet.
            await _until(parent, "child", "awaiting_peer", p_log, any_broker)
            async with running(child):
                await _all(
                    _until(child, "parent", "active", c_log, any_broker),
                    _until(parent, "child", "active", p_log, any_broker),
                )
                with parent.listener("message.dispatched") as heard:
                    for n in range(50):
                        assert parent.send_to_peer("child", Hello(n=n), actor="responder").is_ok()
                    await wait_until(lambda: len(collector.received) == 50, heard, TIMEOUT)
    # Each side: its SUBACKs first, then the other side's first message (the child's ping,
    # and the parent's ack of it).
    assert _transitions(p_log.history) == [*SUBSCRIBED_FIRST, STOPPED]
    assert _transitions(c_log.history) == [*SUBSCRIBED_FIRST, STOPPED]
    assert [m.payload.n for m in responder.received] == list(range(50))
    assert [m.payload.n for m in collector.received] == list(range(50))
    assert {m.header.src for m in collector.received} == {child.name}
    assert {m.header.src for m in responder.received} == {parent.name}
    assert bystander.received == []


async def test_events_through_a_broker_kill_and_restart(
    any_broker: InteropBroker, wire: str
) -> None:
    parent, child, recorder = _gateways(any_broker, wire)
    port = any_broker.port
    results: list[Result[str, StoreError]] = []
    with parent.listener(WATCH) as p_log, child.listener(WATCH) as c_log:
        async with running(parent, child):
            await _all(
                _until(parent, "child", "active", p_log, any_broker),
                _until(child, "parent", "active", c_log, any_broker),
            )
            with parent.listener("event.received") as got:
                kill: asyncio.Task[None] | None = None
                restart: asyncio.Task[None] | None = None
                for first in range(0, OUTAGE_EVENTS, OUTAGE_CHUNK):
                    if first == KILL_AT:
                        kill = asyncio.create_task(any_broker.akill())
                    if first == RESTART_AT:
                        assert kill is not None
                        await kill
                        assert any_broker.leftover_pids() == []
                        # The child noticed the outage while it was generating.
                        await c_log.wait_for(is_state("connecting"), TIMEOUT)
                        restart = asyncio.create_task(any_broker.arestart())
                    results += await _generate(child, first, OUTAGE_CHUNK)
                assert restart is not None
                await restart
                assert any_broker.port == port
                await wait_active(child, "parent", TIMEOUT)
                await wait_until(lambda: len(recorder.events) >= OUTAGE_EVENTS, got, DRAIN_TIMEOUT)
            await _drained(child)
    assert all(isinstance(r, Ok) for r in results)
    # All 1,000 in generation order, each given to the actor once.
    _assert_exactly_once_in_order([e.n for e in recorder.events], list(range(OUTAGE_EVENTS)))
    assert {e.src for e in recorder.events} == {child.name}
    for log in (p_log, c_log):
        transitions = _transitions(log.history)
        assert ("active", "connecting", "mqtt_disconnected") in transitions
        assert transitions[-1] == STOPPED


async def test_backlog_uploaded_in_order_once_the_parent_starts(
    any_broker: InteropBroker, wire: str
) -> None:
    parent, child, recorder = _gateways(any_broker, wire)
    with parent.listener(WATCH) as p_log, child.listener(WATCH) as c_log:
        async with running(child):
            await _until(child, "parent", "awaiting_peer", c_log, any_broker)
            results = await _generate(child, 0, BACKLOG)
            assert all(isinstance(r, Ok) for r in results)
            assert child.store.pending_count == BACKLOG
            assert not child.link("parent").active
            with parent.listener("event.received") as got:
                async with running(parent):
                    await _all(
                        _until(parent, "child", "active", p_log, any_broker),
                        _until(child, "parent", "active", c_log, any_broker),
                    )
                    await wait_until(lambda: len(recorder.events) >= BACKLOG, got, DRAIN_TIMEOUT)
                    await _drained(child)
    _assert_exactly_once_in_order([e.n for e in recorder.events], list(range(BACKLOG)))
    assert _transitions(c_log.history) == [*SUBSCRIBED_FIRST, STOPPED]
    # The parent subscribes while the child pings every ack timeout: either order is right.
    assert _transitions(p_log.history) in ([*SUBSCRIBED_FIRST, STOPPED], [*PEER_FIRST, STOPPED])


# -- a gwproactor bug the suite found ----------------------------------------------------------


def _parent(settings: BrokerSettings, parent: str, child: str) -> tuple[Proactor, EventRecorder]:
    parent_settings, _ = pair_settings(settings, parent=parent, child=child)
    proactor = Proactor(parent_settings, REGISTRY)
    recorder = record_events(proactor)
    return proactor, recorder


async def test_old_publishes_do_not_overtake_the_reupload_after_a_reconnect(
    mosquitto: Mosquitto, fault_proxy_factory: FaultProxyFactory
) -> None:
    """Event 0 is acknowledged by the broker but reaches nobody (the parent is away: clean
    session); event 1 is written into a dead link (the child's proxy is stalled), so paho
    holds it unacknowledged. The parent comes back and subscribes; the child's link is cut
    and reconnects. paho re-sends event 1 right after CONNACK, before the child's link is
    active again, and the parent hands it to its actor; the uploader's re-upload (0, then
    1 again) follows, and 0 reaches the actor second. Expected: [0, 1]. The gateway drops
    paho's held publishes on reconnect (the uploader re-sends events in order), so it gets
    that; this test failed with [1, 0] before. Presence is off on the child's link: with
    it the child stops uploading the moment the parent's will says it is gone, so nothing
    is sent into the void at all (tests/unit/test_upload_hold.py); this test is about the
    path without that help: paho's held publishes after a reconnect."""
    proxy = await fault_proxy_factory((mosquitto.host, mosquitto.port))
    tag = secrets.token_hex(3)
    names = {"parent": f"parent-{tag}", "child": f"child-{tag}"}
    direct = BrokerSettings(port=mosquitto.port, reconnect_min_seconds=0.05)
    _, child_settings = pair_settings(
        BrokerSettings(port=proxy.port, reconnect_min_seconds=0.05), presence=False, **names
    )
    child = Proactor(child_settings, REGISTRY)
    first, _ = _parent(direct, **names)
    second, recorder = _parent(direct, **names)
    async with running(child):
        async with running(first):
            await wait_active(child, "parent")
            await wait_active(first, "child")
        pubacks = proxy.stats().down.packets.get(PacketType.PUBACK, 0)
        assert (await child.generate_event(Counted(n=0))).is_ok()
        # The broker acknowledged event 0 and dropped it: nobody is subscribed.
        await proxy.wait_until(
            lambda: proxy.stats().down.packets.get(PacketType.PUBACK, 0) > pubacks
        )
        proxy.stall(direction="both")
        publishes = proxy.stats().up.packets.get(PacketType.PUBLISH, 0)
        assert (await child.generate_event(Counted(n=1))).is_ok()
        await proxy.wait_until(
            lambda: proxy.stats().up.packets.get(PacketType.PUBLISH, 0) > publishes
        )
        with second.listener("link.state") as states, second.listener("event.received") as got:
            async with running(second):
                await states.wait_for(is_state("awaiting_peer"), TIMEOUT)  # subscribed
                proxy.cut()
                proxy.stall(False)
                await wait_until(lambda: len(recorder.events) == 2, got, TIMEOUT)
                await _drained(child)
                await proxy.stop()  # before the child's clean disconnect (see test_activation)
    _assert_exactly_once_in_order([e.n for e in recorder.events], [0, 1])


# -- the root cause, without gwproactor -------------------------------------------------------


@pytest.fixture
def dot_trouble(request: pytest.FixtureRequest, any_broker: InteropBroker) -> None:
    """Strict xfail (raises BrokerIncompatibility) on brokers that break dotted topics."""
    _expect_dot_trouble(request, any_broker)


@pytest.mark.usefixtures("dot_trouble")
async def test_a_dotted_topic_level_round_trips_unchanged(any_broker: InteropBroker) -> None:
    """What gwproactor relies on: ``.`` inside a topic level is an ordinary character."""
    tag = secrets.token_hex(3)
    topic = f"gw/a-{tag}/to/b-{tag}/test.hello"
    outcome = await asyncio.to_thread(_publish_and_receive, any_broker.port, tag, topic)
    if outcome is None:
        refusals = [line for line in any_broker.log_tail(200).splitlines() if NATS_REFUSAL in line]
        evidence = refusals[-1] if refusals else "no PUBACK"
        raise BrokerIncompatibility(f"{any_broker} refused a PUBLISH to {topic!r}: {evidence}")
    if outcome != topic:
        raise BrokerIncompatibility(f"{any_broker}: published {topic!r}, received {outcome!r}")


def _publish_and_receive(port: int, tag: str, topic: str) -> str | None:
    """With plain paho clients: subscribe to ``gw/a-<tag>/to/b-<tag>/#``, publish ``topic``
    at QoS 1, return the topic the subscriber got, or None if the publisher was disconnected
    instead of acknowledged. Blocking (worker thread); every wait is bounded by TIMEOUT."""
    received: queue.Queue[str] = queue.Queue()
    subscribed = threading.Event()
    sub = Client(CallbackAPIVersion.VERSION2, client_id=f"interop-sub-{tag}")

    def on_message(_c: Client, _u: Any, message: MQTTMessage) -> None:
        received.put(message.topic)

    sub.on_subscribe = lambda *_: subscribed.set()
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    try:
        sub.subscribe(f"gw/a-{tag}/to/b-{tag}/#", qos=1)
        assert subscribed.wait(TIMEOUT), "no SUBACK"
        done = threading.Event()  # PUBACK, or the broker hung up
        pub = Client(CallbackAPIVersion.VERSION2, client_id=f"interop-pub-{tag}")
        pub.on_publish = lambda *_: done.set()
        pub.on_disconnect = lambda *_: done.set()
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        try:
            info = pub.publish(topic, b"{}", qos=1)
            assert done.wait(TIMEOUT), "neither PUBACK nor disconnect"
            if not info.is_published():
                return None
        finally:
            with contextlib.suppress(OSError):
                close_client(pub)
        return received.get(timeout=TIMEOUT)
    finally:
        close_client(sub)
