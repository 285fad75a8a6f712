"""How a gateway reacts to what its links report (the links' owner).

Every call comes from a link on the event loop: state changes (logged, emitted, STATUS=
refreshed, the uploader started or paused), messages and events (queued for dispatch or
stored), acks, problems, broker switches and presence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gwproactor.links import Link, LinkInput, LinkOwner, LinkState
from gwproactor.wire.message import Message

if TYPE_CHECKING:
    from gwproactor.runtime.proactor import Proactor

__all__ = ("LinkObserver",)


class LinkObserver(LinkOwner):
    """The :class:`LinkOwner` of a proactor's links. Loop-only."""

    def __init__(self, proactor: Proactor) -> None:
        self._p = proactor

    def on_link_state(self, link: Link, old: LinkState, new: LinkState, cause: LinkInput) -> None:
        self._p.logger.comm_event.info(
            "%s: %s -> %s (%s)", link.name, old.value, new.value, cause.value
        )
        if self._p.hub:
            self._p.hub.emit(
                "link.state", link.name, {"old": old.value, "new": new.value, "cause": cause.value}
            )
        if self._p.state == "running":
            self._p.patter.set_status(self._p.status_line())
        if link.role == "upstream" and (new is LinkState.active or old is LinkState.active):
            self._p.events.upstream_active(new is LinkState.active)

    def on_link_message(self, link: Link, message: Message[Any]) -> None:
        if self._p.hub:
            self._p.hub.emit("message.received", link.name, {"message": message})
        # The link calls on_link_read_done (a drain) after its read: no task wake-up needed.
        self._p.dispatcher.put_quietly(message)

    def on_link_event(self, link: Link, message: Message[Any]) -> None:
        self._p.events.received(link, message)

    def dispatch_received_event(self, message: Message[Any]) -> None:
        # Stored events go to an actor only if one asked for them (by route or by name).
        header = message.header
        if header.actor or header.message_type in self._p.routes:
            self._p.dispatcher.put(message)

    def on_link_acked(self, link: Link, message_id: str) -> None:
        if self._p.hub:
            self._p.hub.emit("link.acked", link.name, {"message_id": message_id})
        self._p.events.acked(link, message_id)

    def on_link_problem(self, link: Link, kind: str, detail: str) -> None:
        self._p.report_problem(
            f"{link.name}: {kind}", detail, key=f"{link.name}:{kind}", error=False
        )

    def on_link_connect_failed(self, link: Link, reason: str) -> None:
        if self._p.hub:
            self._p.hub.emit("link.connect_failed", link.name, {"reason": reason})
        self._p.report_problem(
            f"{link.name}: cannot connect", reason, key=f"{link.name}:connect", error=False
        )

    def on_link_read_done(self, link: Link) -> None:
        # Dispatch what this read brought in the same loop iteration: one wake-up per burst,
        # no extra trip through the event loop per message.
        self._p.dispatcher.drain()

    def on_link_broker_changed(self, link: Link, broker: str) -> None:
        self._p.logger.comm_event.warning("%s: now on broker %s", link.name, broker)
        if self._p.hub:
            self._p.hub.emit("link.broker", link.name, {"broker": broker})

    def on_link_presence(self, link: Link, presence: str) -> None:
        self._p.logger.comm_event.info("%s: peer %s is %s", link.name, link.peer, presence)
        if self._p.hub:
            self._p.hub.emit("link.presence", link.name, {"peer": link.peer, "presence": presence})

    def on_link_raw_message(self, link: Link, topic: str, payload: bytes) -> None:
        self._p.raw.received(link, topic, payload)
