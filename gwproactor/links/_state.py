"""The link health state machine, as a table.

A link is ``active`` only when MQTT is connected, every subscription has its SUBACK, acks
come back in time and the peer was heard recently. The table below is the whole truth:
:func:`transition` looks a (state, input) pair up and returns the next state, or ``None``
for a pair that must not happen (the caller counts and logs it, and stays put).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ("LinkInput", "LinkState", "TRANSITIONS", "transition")


class LinkState(StrEnum):
    not_started = "not_started"
    connecting = "connecting"
    awaiting_setup_and_peer = "awaiting_setup_and_peer"
    awaiting_setup = "awaiting_setup"
    awaiting_peer = "awaiting_peer"
    active = "active"
    stopped = "stopped"


class LinkInput(StrEnum):
    start_called = "start_called"
    mqtt_connected = "mqtt_connected"
    all_subscribed = "all_subscribed"
    peer_message = "peer_message"
    ack_timeout = "ack_timeout"
    peer_silent = "peer_silent"
    mqtt_disconnected = "mqtt_disconnected"
    stop_called = "stop_called"


S = LinkState
I = LinkInput  # noqa: E741  (short names keep the table readable)

# (state, input) -> next state. Pairs absent from the table are invalid. A pair that maps
# to its own state is valid and changes nothing (e.g. a peer message while active).
TRANSITIONS: dict[tuple[LinkState, LinkInput], LinkState] = {
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
    # Late callbacks after a stop are harmless and expected; they change nothing.
    (S.stopped, I.mqtt_disconnected): S.stopped,
}


def transition(state: LinkState, event: LinkInput) -> LinkState | None:
    """The next state, or None if ``event`` must not happen in ``state``."""
    return TRANSITIONS.get((state, event))
