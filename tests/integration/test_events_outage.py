"""An upstream broker outage in the middle of a burst of events: nothing lost, nothing twice.

Parent and child share one real mosquitto. The broker is SIGKILLed while the child is
generating 5,000 events, and restarted while it is still generating. The parent must end
with exactly the 5,000 events, in generation order, each handed to its actor once, and
the child's store must be empty.

The last test makes the dangerous moment of such an outage deterministic with two fault
proxies: the dead broker had acknowledged older events it never delivered, while paho
still held newer ones it had not acknowledged. paho used to re-send those on the next
CONNACK, ahead of the uploader's ordered re-upload of the older ones (fixed in 9056c93:
the wrapper drops paho's held publishes on CONNACK).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import pytest
from result import Ok, Result

from gwproactor import BrokerSettings, Proactor, StoreError
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
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
from tests.support.proxy import PacketType

if TYPE_CHECKING:
    from tests.support.proxy import FaultProxy, FaultProxyFactory

pytestmark = pytest.mark.broker

log = logging.getLogger(__name__)

TOTAL = 5000
CHUNK = 250
KILL_AT = 1000  # events generated when the broker is killed
RESTART_AT = 3500  # events generated when it is started again
DRAIN_TIMEOUT = 60.0
TIMEOUT = 20.0


def _broker(port: int) -> BrokerSettings:
    return BrokerSettings(port=port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5)


def _gateways(
    parent_port: int, child_port: int | None = None, *, ack_timeout_seconds: float = 5.0
) -> tuple[Proactor, Proactor, EventRecorder]:
    """A parent routing ``Counted`` to a recorder, and a child; each on its own address."""
    parent_settings, _ = pair_settings(
        _broker(parent_port), ack_timeout_seconds=ack_timeout_seconds
    )
    _, child_settings = pair_settings(
        _broker(child_port or parent_port), ack_timeout_seconds=ack_timeout_seconds
    )
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    recorder = record_events(parent)
    return parent, child, recorder


async def _generate(child: Proactor, first: int, count: int) -> list[Result[str, StoreError]]:
    return list(
        await asyncio.gather(
            *(child.generate_event(Counted(n=n)) for n in range(first, first + count))
        )
    )


async def test_broker_killed_and_restarted_while_the_child_generates_5000_events(
    mosquitto: Mosquitto,
) -> None:
    parent, child, recorder = _gateways(mosquitto.port)
    results: list[Result[str, StoreError]] = []
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        with child.listener("link.state") as c_states, parent.listener("event.received") as got:
            kill: asyncio.Task[None] | None = None
            restart: asyncio.Task[Mosquitto] | None = None
            restarted_at = 0.0
            backlog = 0
            for first in range(0, TOTAL, CHUNK):
                if first == KILL_AT:
                    kill = asyncio.create_task(mosquitto.akill())
                if first == RESTART_AT:
                    assert kill is not None
                    await kill
                    # The child noticed the outage while it was generating.
                    await c_states.wait_for(is_state("connecting"), TIMEOUT)
                    restarted_at = time.monotonic()
                    backlog = child.store.pending_count
                    restart = asyncio.create_task(mosquitto.astart())
                results += await _generate(child, first, CHUNK)
            assert restart is not None
            await restart
            await wait_active(child, "parent", TIMEOUT)
            await wait_until(lambda: len(recorder.events) >= TOTAL, got, DRAIN_TIMEOUT)
            with child.listener("event.acked") as acked:
                await wait_until(lambda: child.store.pending_count == 0, acked, TIMEOUT)
            drained_in = time.monotonic() - restarted_at
            await child.store.flush()
            assert child.store.pending_count == 0
            archive = await parent.query_events(Counted.type_name, limit=10_000)
        assert ("active", "connecting") in [
            (e.data["old"], e.data["new"]) for e in c_states.history
        ]
    uploader = child.events.uploader
    assert uploader is not None
    log.info(
        "outage: backlog of %d events at the broker restart (%d more generated after it); "
        "all delivered and cleared %.2f s after the restart; "
        "%d sent, %d re-sent after reconnects, %d duplicates at the parent",
        backlog,
        TOTAL - RESTART_AT,
        drained_in,
        uploader.stats.sent,
        uploader.stats.resent_after_reconnect,
        parent.stats.events_duplicate,
    )
    assert all(isinstance(r, Ok) for r in results)
    assert len({r.ok_value for r in results if isinstance(r, Ok)}) == TOTAL
    assert child.stats.link("parent").reconnects >= 1
    # Exactly the 5,000, each given to the actor once, and archived once.
    received = [e.n for e in recorder.events]
    assert sorted(received) == list(range(TOTAL))
    assert {e.src for e in recorder.events} == {"child"}
    archived = [Counted.model_validate_json(e.payload).n for e in archive]
    assert sorted(archived) == list(range(TOTAL))
    assert len({e.event_id for e in archive}) == TOTAL
    assert not any(e.pending for e in archive)
    # In generation order.
    assert received == list(range(TOTAL))
    assert archived == received


async def test_events_the_dead_broker_acked_are_not_overtaken_by_paho_resends(
    mosquitto: Mosquitto, fault_proxy_factory: FaultProxyFactory
) -> None:
    """The outage above made deterministic with two proxies: the broker acknowledges 0..9
    but never delivers them; 10..19 it delivers nowhere either and its acknowledgements
    never reach the child. After both reconnect, the parent must still get 0..19 in order."""
    to_parent = await fault_proxy_factory((mosquitto.host, mosquitto.port))
    to_child = await fault_proxy_factory((mosquitto.host, mosquitto.port))
    # Long ack deadlines: only the reconnects may make the child send anything again.
    parent, child, recorder = _gateways(to_parent.port, to_child.port, ack_timeout_seconds=60)
    child.add_communicator(Recorder("rx", child))

    def packets(proxy: FaultProxy, direction: str, kind: PacketType) -> int:
        stats = proxy.stats()
        return (stats.up if direction == "up" else stats.down).packets.get(kind, 0)

    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        # 1. The broker takes 0..9 and acknowledges them to the child; the parent's side
        #    of the connection is stalled, so they never reach it.
        to_parent.stall(direction="down")
        pubacks = packets(to_child, "down", PacketType.PUBACK)
        for n in range(10):
            assert (await child.generate_event(Counted(n=n))).is_ok()
        await to_child.wait_until(
            lambda: packets(to_child, "down", PacketType.PUBACK) >= pubacks + 10, TIMEOUT
        )
        with child.listener("message.received") as heard:
            # Behind those PUBACKs on the child's connection: once it is read, they are.
            assert parent.send_to_peer("child", Hello(n=0), actor="rx").is_ok()
            await heard.get(TIMEOUT)
        # 2. The broker takes 10..19 too, but its PUBACKs never reach the child.
        to_child.stall(direction="down")
        publishes = packets(to_child, "up", PacketType.PUBLISH)
        pubacks = packets(to_child, "down", PacketType.PUBACK)
        for n in range(10, 20):
            assert (await child.generate_event(Counted(n=n))).is_ok()
        await to_child.wait_until(
            lambda: (
                packets(to_child, "up", PacketType.PUBLISH) >= publishes + 10
                and packets(to_child, "down", PacketType.PUBACK) >= pubacks + 10
            ),
            TIMEOUT,
        )
        # 3. The parent's connection dies with 0..19 undelivered; it reconnects and
        #    subscribes again (a clean session: the broker forgot the old one).
        with parent.listener("link.state") as p_states:
            to_parent.cut()
            to_parent.stall(False)
            await p_states.wait_for(is_state("awaiting_peer"), TIMEOUT)
        # 4. The child's connection dies too; it reconnects, and the uploader re-sends
        #    everything pending, in order, once the link is active again.
        with parent.listener("message.dispatched") as dispatched:
            to_child.cut()
            to_child.stall(False)
            await wait_until(lambda: len(recorder.events) >= 20, dispatched, TIMEOUT)
        await to_parent.stop()  # see test_activation._stop_proxy_first
        await to_child.stop()
    assert [e.n for e in recorder.events] == list(range(20))
