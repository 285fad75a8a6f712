"""The link state machine: the full (state, input) table, and activation on the fast layer."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from gwproactor import BrokerSettings, LinkState, Proactor
from gwproactor.links import TRANSITIONS, LinkInput, transition
from gwproactor.mqtt import MemoryBroker
from tests.helpers import REGISTRY, TIMEOUT, memory_factory, pair_settings, running, wait_active

S = LinkState
I = LinkInput  # noqa: E741

# Written out from ARCHITECTURE.md, independently of the implementation's table. A pair
# missing here must be refused (None); a pair mapped to its own state changes nothing.
EXPECTED: dict[tuple[LinkState, LinkInput], LinkState] = {
    (S.not_started, I.start_called): S.connecting,
    (S.not_started, I.stop_called): S.stopped,
    (S.connecting, I.mqtt_connected): S.awaiting_setup_and_peer,
    (S.connecting, I.mqtt_disconnected): S.connecting,
    (S.connecting, I.stop_called): S.stopped,
    (S.awaiting_setup_and_peer, I.all_subscribed): S.awaiting_peer,
    (S.awaiting_setup_and_peer, I.peer_message): S.awaiting_setup,
    (S.awaiting_setup_and_peer, I.ack_timeout): S.awaiting_setup_and_peer,
    (S.awaiting_setup_and_peer, I.peer_silent): S.awaiting_setup_and_peer,
    (S.awaiting_setup_and_peer, I.mqtt_disconnected): S.connecting,
    (S.awaiting_setup_and_peer, I.stop_called): S.stopped,
    (S.awaiting_setup, I.all_subscribed): S.active,
    (S.awaiting_setup, I.peer_message): S.awaiting_setup,
    (S.awaiting_setup, I.ack_timeout): S.awaiting_setup_and_peer,
    (S.awaiting_setup, I.peer_silent): S.awaiting_setup_and_peer,
    (S.awaiting_setup, I.mqtt_disconnected): S.connecting,
    (S.awaiting_setup, I.stop_called): S.stopped,
    (S.awaiting_peer, I.all_subscribed): S.awaiting_peer,
    (S.awaiting_peer, I.peer_message): S.active,
    (S.awaiting_peer, I.ack_timeout): S.awaiting_peer,
    (S.awaiting_peer, I.peer_silent): S.awaiting_peer,
    (S.awaiting_peer, I.mqtt_disconnected): S.connecting,
    (S.awaiting_peer, I.stop_called): S.stopped,
    (S.active, I.all_subscribed): S.active,
    (S.active, I.peer_message): S.active,
    (S.active, I.ack_timeout): S.awaiting_peer,
    (S.active, I.peer_silent): S.awaiting_peer,
    (S.active, I.mqtt_disconnected): S.connecting,
    (S.active, I.stop_called): S.stopped,
    (S.stopped, I.stop_called): S.stopped,
    (S.stopped, I.mqtt_disconnected): S.stopped,
}

PAIRS = list(itertools.product(LinkState, LinkInput))


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s}-{i}" for s, i in PAIRS])
def test_every_state_input_pair(state: LinkState, event: LinkInput) -> None:
    assert transition(state, event) == EXPECTED.get((state, event))


def test_table_has_no_pairs_beyond_the_expected_ones() -> None:
    assert TRANSITIONS == EXPECTED
    assert len(PAIRS) == 56


def test_only_all_subscribed_or_peer_message_reach_active() -> None:
    into_active = {(s, i) for (s, i), new in TRANSITIONS.items() if new is S.active and s != new}
    assert into_active == {(S.awaiting_setup, I.all_subscribed), (S.awaiting_peer, I.peer_message)}


async def test_invalid_input_is_counted_and_changes_nothing() -> None:
    broker = MemoryBroker()
    parent_settings, _ = pair_settings(BrokerSettings())
    proactor = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    link = proactor.link("child")
    link._input(LinkInput.peer_message)  # not started: a peer message cannot happen
    assert link.state is S.not_started
    assert link.invalid_inputs == 1
    assert not link.stats.state_changes


def _gateways(broker: MemoryBroker, **link: Any) -> tuple[Proactor, Proactor]:
    # Presence (the retained status topic) is a subscription of its own; these tests
    # count SUBACKs of the gateway subscriptions only.
    parent_settings, child_settings = pair_settings(BrokerSettings(), presence=False, **link)
    return (
        Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker)),
        Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker)),
    )


def _transitions(history: object) -> list[tuple[str, str]]:
    return [(e.data["old"], e.data["new"]) for e in history]  # type: ignore[attr-defined]


async def _subscribed(proactor: Proactor) -> None:
    link = next(iter(proactor.links.values()))
    with proactor.listener("link.state") as states:
        if link.state is not S.awaiting_peer:
            await states.wait_for(lambda e: e.data["new"] == "awaiting_peer", TIMEOUT)


async def test_activation_suback_before_first_peer_message() -> None:
    broker = MemoryBroker()
    parent, child = _gateways(broker)
    with parent.listener("link.state") as states:
        async with running(parent, child):
            await wait_active(parent, "child")
            await wait_active(child, "parent")
    assert _transitions(states.history) == [
        ("not_started", "connecting"),
        ("connecting", "awaiting_setup_and_peer"),
        ("awaiting_setup_and_peer", "awaiting_peer"),
        ("awaiting_peer", "active"),
        ("active", "stopped"),
    ]


async def test_activation_suback_after_first_peer_message() -> None:
    broker = MemoryBroker()
    parent, child = _gateways(broker, ack_timeout_seconds=0.1)
    with parent.listener("link.state") as states:
        async with running(child):
            await _subscribed(child)
            broker.hold_subacks = True  # the parent's SUBACK is delayed on the way back
            async with running(parent):
                # The child pings after each ack timeout; the parent hears it unsubscribed.
                await states.wait_for(lambda e: e.data["new"] == "awaiting_setup", TIMEOUT)
                assert broker.release_subacks() == 1
                await wait_active(parent, "child")
    assert _transitions(states.history) == [
        ("not_started", "connecting"),
        ("connecting", "awaiting_setup_and_peer"),
        ("awaiting_setup_and_peer", "awaiting_setup"),
        ("awaiting_setup", "active"),
        ("active", "stopped"),
    ]


async def test_several_subscriptions_acked_one_by_one() -> None:
    broker = MemoryBroker()
    parent, child = _gateways(broker, ack_timeout_seconds=0.1)
    link = parent.link("child")
    for extra in ("site/a/#", "site/b/#"):
        link.transport.subscribe(extra, link.qos)
    with parent.listener("link.state") as states:
        async with running(child):
            await _subscribed(child)
            broker.hold_subacks = True
            async with running(parent):
                await states.wait_for(lambda e: e.data["new"] == "awaiting_setup", TIMEOUT)
                assert broker.held_subacks == 3
                for _ in range(2):
                    assert broker.release_subacks(1) == 1
                    assert link.state is S.awaiting_setup  # not yet: one SUBACK missing
                assert broker.release_subacks(1) == 1
                await wait_active(parent, "child")
    assert ("awaiting_setup", "active") in _transitions(states.history)
