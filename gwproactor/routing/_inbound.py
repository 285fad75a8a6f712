"""Inbound routing: where a link's decoded traffic goes (the links' owner).

Every call comes from a link on the event loop. A decoded message goes straight into the
receive queue (one step: link -> queue), and the link's end-of-read drains the queue in the
same loop iteration; stored events go to the event manager (store first, then ack, then
dispatch); raw-topic messages to the raw router; acks, problems, state changes, broker
switches and presence are logged, emitted to listeners and passed on. This object holds the
parts it hands things to; it knows nothing of the Proactor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gwproactor.errors import StateError
from gwproactor.events import EventManager
from gwproactor.links import Link, LinkInput, LinkOwner, LinkState
from gwproactor.observe.history import GatewayHistory
from gwproactor.observe.listeners import ListenerHub
from gwproactor.routing._dispatcher import Dispatcher
from gwproactor.routing._raw import RawRouter
from gwproactor.wire.message import Message

__all__ = ("InboundRouter",)

ReportProblem = Callable[..., None]


class InboundRouter(LinkOwner):
    """The :class:`LinkOwner` of a gateway's links. Loop-only.

    ``on_state_change`` is called after every link state change (the runtime refreshes the
    service manager's STATUS= line with it).
    """

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        raw: RawRouter,
        hub: ListenerHub,
        report_problem: ReportProblem,
        on_state_change: Callable[[], None],
        comm_log: logging.Logger,
        history: GatewayHistory | None = None,
    ) -> None:
        self._history = history
        self._dispatcher = dispatcher
        self._events: EventManager | None = None
        self._raw = raw
        self._hub = hub
        self._report_problem = report_problem
        self._on_state_change = on_state_change
        self._log = comm_log

    def bind_events(self, events: EventManager) -> None:
        """Give the router the event manager (built after the links it serves, since its
        uploader needs the upstream link). Once, before the links start."""
        self._events = events

    @property
    def events(self) -> EventManager:
        events = self._events
        if events is None:
            raise StateError("InboundRouter used before bind_events()")
        return events

    def on_link_state(self, link: Link, old: LinkState, new: LinkState, cause: LinkInput) -> None:
        self._log.info("%s: %s -> %s (%s)", link.name, old.value, new.value, cause.value)
        if self._hub:
            self._hub.emit(
                "link.state", link.name, {"old": old.value, "new": new.value, "cause": cause.value}
            )
        if self._history is not None:
            self._history.link_state(link.name, old.value, new.value)
        self._on_state_change()
        if link.role == "upstream" and (new is LinkState.active or old is LinkState.active):
            self.events.upstream_active(new is LinkState.active)

    @property
    def receive(self) -> Callable[[str, Message[Any]], None]:
        # Straight into the queue; the link's read_done drains it after the read.
        return self._dispatcher.receive

    @property
    def read_done(self) -> Callable[[], None]:
        return self._dispatcher.drain

    def on_link_event(self, link: Link, message: Message[Any]) -> None:
        self.events.received(link, message)

    def on_link_acked(self, link: Link, message_id: str) -> None:
        if self._hub:
            self._hub.emit("link.acked", link.name, {"message_id": message_id})
        self.events.acked(link, message_id)

    def on_link_problem(self, link: Link, kind: str, detail: str) -> None:
        self._report_problem(
            f"{link.name}: {kind}",
            detail,
            key=f"{link.name}:{kind}",
            error=False,
            kind=f"link.{kind}",
        )

    def on_link_connect_failed(self, link: Link, reason: str) -> None:
        if self._hub:
            self._hub.emit("link.connect_failed", link.name, {"reason": reason})
        self._report_problem(
            f"{link.name}: cannot connect",
            reason,
            key=f"{link.name}:connect",
            error=False,
            kind="link.connect",
        )

    def on_link_broker_changed(self, link: Link, broker: str) -> None:
        self._log.warning("%s: now on broker %s", link.name, broker)
        if self._hub:
            self._hub.emit("link.broker", link.name, {"broker": broker})

    def on_link_presence(self, link: Link, presence: str) -> None:
        self._log.info("%s: peer %s is %s", link.name, link.peer, presence)
        if self._hub:
            self._hub.emit("link.presence", link.name, {"peer": link.peer, "presence": presence})
        self.events.peer_presence(link, presence)

    def on_link_raw_message(self, link: Link, topic: str, payload: bytes) -> None:
        self._raw.received(link, topic, payload)
