"""Link activation in every order, ack timeouts and peer silence, against real mosquitto.

The parent's SUBACKs are held back by a fault proxy (``hold_packets({SUBACK})``) to make
them arrive after the first message from the peer, and released one by one. Every test
compares the exact sequence of link-state transitions (old, new, cause) it recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest

from gwproactor import BrokerSettings, Header, LinkState, Proactor
from gwproactor.observe.listeners import CommEvent, EventListener
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
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

Transition = tuple[str, str, str]

STARTED: list[Transition] = [
    ("not_started", "connecting", "start_called"),
    ("connecting", "awaiting_setup_and_peer", "mqtt_connected"),
]


def _broker(port: int) -> BrokerSettings:
    return BrokerSettings(port=port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5)


def _pair(
    parent_port: int,
    child_port: int,
    *,
    parent_link: dict[str, Any] | None = None,
    child_link: dict[str, Any] | None = None,
) -> tuple[Proactor, Proactor]:
    """A parent and a child, each on its own broker address (the same broker, or a proxy
    in front of it), with link settings of their own."""
    parent_settings, _ = pair_settings(_broker(parent_port), **(parent_link or {}))
    _, child_settings = pair_settings(_broker(child_port), **(child_link or {}))
    return Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)


def _transitions(history: Iterable[CommEvent]) -> list[Transition]:
    return [(e.data["old"], e.data["new"], e.data["cause"]) for e in history]


async def _proxy(factory: FaultProxyFactory, broker: Mosquitto) -> FaultProxy:
    return await factory((broker.host, broker.port))


async def _stop_proxy_first(proxy: FaultProxy) -> None:
    """Reset the connections through ``proxy`` before the gateway behind it stops.

    A clean MQTT disconnect through the proxy can crash the proxy's EOF forwarding: what
    it forwards after the gateway closed its socket (the PUBACK of the gateway's last,
    presence, publish) is answered with a reset, and the ``write_eof`` that forwards the
    broker's EOF then raises ENOTCONN, which the fixture raises at teardown. Stopping the
    proxy first resets everything instead. (``_Pump._forward_eof`` in tests/support/proxy.py
    should treat an OSError there like a closed sink.)
    """
    await proxy.stop()


async def _say_hello(child: Proactor, heard: EventListener, n: int) -> None:
    """Send a no-ack message from the child to the parent's ``rx`` and wait until the
    parent has read it. On the parent's connection it follows everything the proxy
    released before it was sent, so it is also a barrier for released SUBACKs."""
    assert child.send_to_peer("parent", Hello(n=n), actor="rx").is_ok()
    await heard.wait_for(lambda e: e.data["message"].payload == Hello(n=n), TIMEOUT)


async def test_subacks_before_the_first_peer_message(mosquitto: Mosquitto) -> None:
    parent, child = _pair(mosquitto.port, mosquitto.port)
    with parent.listener("link.state") as p_states, child.listener("link.state") as c_states:
        async with running(parent):
            # Subscribed while the child is not there yet: nothing can have come from it.
            await p_states.wait_for(is_state("awaiting_peer"), TIMEOUT)
            async with running(child):
                await wait_active(parent, "child")
                await wait_active(child, "parent")
    # Each side: its SUBACK first, then the other side's first message (the ping that
    # the child sends once subscribed, and the parent's ack of it).
    expected = [
        *STARTED,
        ("awaiting_setup_and_peer", "awaiting_peer", "all_subscribed"),
        ("awaiting_peer", "active", "peer_message"),
        ("active", "stopped", "stop_called"),
    ]
    assert _transitions(p_states.history) == expected
    assert _transitions(c_states.history) == expected


async def test_suback_held_until_after_the_first_peer_message(
    mosquitto: Mosquitto, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = await _proxy(fault_proxy_factory, mosquitto)
    parent, child = _pair(proxy.port, mosquitto.port)
    parent.add_communicator(Recorder("rx", parent))
    link = parent.link("child")
    with parent.listener("link.state") as states:
        async with running(child):
            proxy.hold_packets({PacketType.SUBACK})
            async with running(parent):
                await states.wait_for(is_state("awaiting_setup_and_peer"), TIMEOUT)
                # Once the broker has answered every SUBSCRIBE, it delivers to the parent.
                subscriptions = len(link.transport.subscriptions)
                await proxy.wait_until(lambda: proxy.held_count == subscriptions, TIMEOUT)
                with parent.listener("message.received") as heard:
                    await _say_hello(child, heard, 1)
                assert link.state is LinkState.awaiting_setup
                assert not link.transport.all_subscribed
                assert proxy.release_held() == subscriptions
                await wait_active(parent, "child")
                activation = _transitions(states.history)
                await _stop_proxy_first(proxy)
    assert activation == [
        *STARTED,
        ("awaiting_setup_and_peer", "awaiting_setup", "peer_message"),
        ("awaiting_setup", "active", "all_subscribed"),
    ]


async def test_several_subscriptions_acked_one_by_one(
    mosquitto: Mosquitto, fault_proxy_factory: FaultProxyFactory
) -> None:
    proxy = await _proxy(fault_proxy_factory, mosquitto)
    parent, child = _pair(proxy.port, mosquitto.port)
    parent.add_communicator(Recorder("rx", parent))
    link = parent.link("child")
    for topic_filter in ("site/a/#", "site/b/#"):
        link.subscribe_raw(topic_filter)
    with parent.listener("link.state") as states:
        async with running(child):
            proxy.hold_packets({PacketType.SUBACK})
            async with running(parent):
                # The link's own subscriptions (messages, presence) and the two raw ones.
                subscriptions = len(link.transport.subscriptions)
                assert subscriptions >= 3
                await proxy.wait_until(lambda: proxy.held_count == subscriptions, TIMEOUT)
                with parent.listener("message.received") as heard:
                    await _say_hello(child, heard, 0)
                    for n in range(1, subscriptions):
                        assert proxy.release_held(1) == 1
                        await _say_hello(child, heard, n)  # that SUBACK is processed now
                        assert link.state is LinkState.awaiting_setup, n
                        assert not link.transport.all_subscribed
                    assert proxy.release_held(1) == 1
                    await wait_active(parent, "child")
                    assert link.transport.all_subscribed
                activation = _transitions(states.history)
                await _stop_proxy_first(proxy)
    assert activation == [
        *STARTED,
        ("awaiting_setup_and_peer", "awaiting_setup", "peer_message"),
        ("awaiting_setup", "active", "all_subscribed"),
    ]


async def test_withheld_acks_take_the_link_to_awaiting_peer_until_they_return(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent, child = _pair(mosquitto.port, mosquitto.port, child_link={"ack_timeout_seconds": 0.5})
    recorder = record_events(parent)
    parent_link = parent.link("child")
    withheld: asyncio.Queue[Header] = asyncio.Queue()

    def withhold(header: Header) -> None:
        withheld.put_nowait(header)

    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        with child.listener("link.state") as c_states, parent.listener("link.state") as p_states:
            ack_for_real = parent_link.send_ack
            monkeypatch.setattr(parent_link, "send_ack", withhold)
            assert (await child.generate_event(Counted(n=1))).is_ok()
            assert (await withheld.get()).message_type == Counted.type_name
            down = await c_states.wait_for(is_state("awaiting_peer"), TIMEOUT)
            assert down.data["cause"] == "ack_timeout"
            # Each withheld answer to a ping is one more ack timeout: still awaiting_peer.
            for _ in range(2):
                header = await asyncio.wait_for(withheld.get(), TIMEOUT)
                assert header.message_type == "gw.ping"
                assert child.link("parent").state is LinkState.awaiting_peer
            monkeypatch.setattr(parent_link, "send_ack", ack_for_real)
            up = await c_states.wait_for(is_state("active"), TIMEOUT)
            assert up.data["cause"] == "peer_message"
            with child.listener("event.acked") as acked:
                await wait_until(lambda: child.store.pending_count == 0, acked, TIMEOUT)
        assert _transitions(c_states.history) == [
            ("active", "awaiting_peer", "ack_timeout"),
            ("awaiting_peer", "active", "peer_message"),
        ]
        assert list(p_states.history) == []  # the parent heard the child all along
    child_stats = child.stats.link("parent")
    assert child_stats.ack_timeouts >= 3  # the event and two pings
    # The event was re-sent on reactivation: stored once, acked, given to the actor once.
    assert [e.n for e in recorder.events] == [1]
    assert parent.stats.events_duplicate == 1


PEER_TIMEOUT = 0.8
HELLO_EVERY = 0.05
HELLOS = 40


async def test_a_peer_sending_only_no_ack_messages_is_noticed_when_it_goes_silent(
    mosquitto: Mosquitto,
) -> None:
    # The child never pings while idle (poll_seconds) and nothing it sends needs an ack:
    # only the receive side ("heard from recently") can notice that the parent is gone.
    parent, child = _pair(
        mosquitto.port,
        mosquitto.port,
        child_link={"peer_timeout_seconds": PEER_TIMEOUT, "poll_seconds": 60.0},
    )
    rx = Recorder("rx", child)
    child.add_communicator(rx)
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        with child.listener("link.state") as states:
            with child.listener("message.dispatched") as heard:
                # Two and a half peer timeouts' worth of no-ack traffic keeps it active.
                for n in range(HELLOS):
                    assert parent.send_to_peer("child", Hello(n=n), actor="rx").is_ok()
                    await heard.get(TIMEOUT)
                    await asyncio.sleep(HELLO_EVERY)  # pacing the traffic, not synchronisation
            assert [m.payload.n for m in rx.received] == list(range(HELLOS))
            assert list(states.history) == []
            assert child.link("parent").active
            await parent.stop_and_join()
            silent = await states.wait_for(is_state("awaiting_peer"), TIMEOUT)
        assert silent.data["cause"] == "peer_silent"
        assert _transitions(states.history) == [("active", "awaiting_peer", "peer_silent")]
