"""A link: one broker connection to one peer gateway, with its health state machine."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from result import Err, Ok, Result

from gwproactor.config import LinkSettings
from gwproactor.errors import ConfigError, DecodeError, EncodeError, LinkError
from gwproactor.links._acks import AckTracker
from gwproactor.links._dedup import DedupWindow
from gwproactor.links._state import LinkInput, LinkState, transition
from gwproactor.mqtt import QOS, Transport, TransportListener
from gwproactor.observe.stats import OTHER, LinkStats
from gwproactor.wire.codec import Codec
from gwproactor.wire.message import Ack, Acks, Event, Header, Message, Payload, Ping, new_message_id
from gwproactor.wire.names import TOPIC_ROOT, status_topic

__all__ = ("Link", "LinkOwner", "TransportFactory", "presence_payload")

_ACK = Ack.type_name
_ACKS = Acks.type_name
_PING = Ping.type_name
_OK: Ok[None] = Ok(None)
_ACTIVE = LinkState.active
_CLOCK_SLACK = 0.05  # a timer may run a hair before the deadline it was armed for


class LinkOwner(Protocol):
    """Where a link's traffic and news go. Every call is made on the event loop.

    The hot path is two plain callables the link binds once: ``receive`` takes a new
    message into the receive queue (one step from the link to the queue) and ``read_done``
    dispatches what a read brought, in the same loop iteration.
    """

    @property
    def receive(self) -> Callable[[str, Message[Any]], None]:
        """Queue a new (not duplicate) non-event message from the peer, already acked if
        asked, with the link's name (the queue emits ``message.received`` to listeners)."""
        ...

    @property
    def read_done(self) -> Callable[[], None]:
        """Dispatch what the link's read brought in (called after every read batch)."""
        ...

    def on_link_state(self, link: Link, old: LinkState, new: LinkState, cause: LinkInput) -> None:
        """After every state change (the link has already logged and counted it)."""

    def on_link_event(self, link: Link, message: Message[Any]) -> None:
        """An event from the peer. The owner acks it (``link.send_ack``) once it is stored."""

    def on_link_acked(self, link: Link, message_id: str) -> None:
        """The peer acknowledged one of our ack-required messages."""

    def on_link_problem(self, link: Link, kind: str, detail: str) -> None:
        """Something the operator should know (already counted in the link's stats):
        ``decode.<reason>`` for undecodable input, ``subscribe`` for a refused subscription."""

    def on_link_raw_message(self, link: Link, topic: str, payload: bytes) -> None:
        """A message on a topic outside ``gw/`` (raw subscriptions)."""

    def on_link_connect_failed(self, link: Link, reason: str) -> None:
        """One attempt to connect failed; the transport retries after its backoff."""

    def on_link_broker_changed(self, link: Link, broker: str) -> None:
        """The link failed over (or back) to another broker."""

    def on_link_presence(self, link: Link, presence: str) -> None:
        """The peer's retained presence changed (``online``/``offline``)."""


TransportFactory = Callable[["Link", TransportListener], Transport]


def presence_payload(gateway: str, online: bool) -> bytes:
    """The retained JSON on ``gw/<gateway>/status``."""
    return json.dumps({"gateway": gateway, "state": "online" if online else "offline"}).encode()


class Link(TransportListener):
    """One link: the transport to one peer gateway's broker, the link's health state, ack
    deadlines, de-duplication of what the peer sends, and the idle timers (ping, silence).

    Lifecycle: construct (cheap: builds the transport, no I/O) → :meth:`start` once, on the
    running loop (the transport connects and keeps reconnecting by itself) → ``await``
    :meth:`stop` once. The state (:class:`LinkState`) changes only through one setter,
    which logs, counts and tells the owner (:meth:`LinkOwner.on_link_state`); see
    :mod:`gwproactor.links._state` for the table. It is ``active`` only while connected,
    every subscription acknowledged, no ack overdue, and the peer heard within
    ``peer_timeout_seconds``.

    Errors: sending never raises for a link that is down; it returns ``Err(LinkError)``
    and counts it (messages are not queued for later: durable delivery is what events are
    for). Decode failures and refused subscriptions are counted and reported to the owner
    (:meth:`LinkOwner.on_link_problem`), never raised.

    Threads: loop-only, every method and property (other threads go through the
    Proactor's ``*_threadsafe`` methods). The ``on_transport_*`` methods are the
    transport's callbacks (:class:`~gwproactor.mqtt.TransportListener`); only the
    transport calls them.
    """

    def __init__(
        self,
        name: str,
        gateway: str,
        settings: LinkSettings,
        codec: Codec,
        owner: LinkOwner,
        transport_factory: TransportFactory,
        *,
        stats: LinkStats | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``name`` is the link's (a key of ``ProactorSettings.links``), ``gateway`` this
        gateway's name; ``owner`` receives the link's traffic and news; the transport is
        built at once by ``transport_factory(self, self)``. No I/O; raises nothing beyond
        what the factory raises."""
        self.name = name
        self.gateway = gateway
        self.settings = settings
        self.peer = settings.peer or ""
        self.role = settings.role
        self.broker_only = settings.role == "broker"
        self.codec = codec
        self._decode = codec.decode_message
        self.qos = QOS(settings.qos)
        self.stats = stats or LinkStats(name)
        self.log = logger or logging.getLogger(f"gwproactor.link.{name}")
        self.state = LinkState.not_started
        self.invalid_inputs = 0
        self._owner = owner
        self._receive = owner.receive
        self._read_done = owner.read_done
        self._clock = clock
        self._acks = AckTracker(settings.ack_timeout_seconds, self._on_ack_timeout, clock)
        self._dedup = DedupWindow(settings.dedup_window)
        self._gw_prefix = TOPIC_ROOT + "/"
        self.subscription = codec.subscription(self.peer, gateway)
        self.status_topic = status_topic(gateway)
        self.peer_status_topic = status_topic(self.peer) if self.peer else ""
        self.peer_presence = "unknown"
        self.last_heard = 0.0  # monotonic
        self.last_sent = 0.0
        self.last_heard_wall = 0.0  # wall clock, for status pages only
        self.last_sent_wall = 0.0
        # Why the last connection ended or the last attempt failed (kept once connected
        # again, with its wall-clock time): what an operator asks of a link not active.
        self.last_error = ""
        self.last_error_wall = 0.0
        self._poll_timer: Any = None
        self._silence_timer: Any = None
        self._all_subscribed = False
        self._connected_at = 0.0
        self._pings: set[str] = set()
        self._unanswered_reported = False
        self._ack_batch: list[str] = []
        self._labels: dict[str, str] = {}  # registered message type -> its stats label
        self.transport: Transport = transport_factory(self, self)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe (the peer's topics, its presence) and start the transport, which
        connects in the background: the state becomes ``connecting`` at once, and later
        states arrive through the owner's ``on_link_state``. Call once, on the running
        loop (``RuntimeError`` without one). Returns without waiting for the broker."""
        if not self.broker_only:
            self.transport.subscribe(self.subscription, self.qos)
        if self.settings.uses_presence:
            self.transport.subscribe(self.peer_status_topic, self.qos)
        self._input(LinkInput.start_called)
        self.transport.start()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop: the state becomes ``stopped`` first (so the disconnect that follows is
        expected, not a lost connection), timers and ack deadlines are cancelled, a clean
        ``offline`` presence is published if connected, then the transport disconnects
        within about ``timeout`` seconds. Raises nothing of its own. Cancelled while the
        transport disconnects, the link is already stopped and the transport's stop is
        cancelled with it (the Proactor's shutdown bounds it instead of cancelling)."""
        self._input(LinkInput.stop_called)
        self._cancel_timers()
        self._acks.cancel_all()
        if self.settings.uses_presence and self.transport.connected():
            self._publish_presence(online=False)  # a clean stop says so; the will covers the rest
        await self.transport.stop(timeout)

    @property
    def active(self) -> bool:
        """Whether the state is ``active`` (connected, subscribed, acks on time, peer
        heard)."""
        return self.state is _ACTIVE

    @property
    def inflight_limit(self) -> int:
        """How many QoS 1/2 publishes the transport lets out unfinished at once on its
        current connection (0: no limit; a transport that does not say counts as none).
        Past it the transport only queues what :meth:`publish` hands it, while the ack
        deadline already runs: a sender keeping many ack-required messages out sizes its
        window by it (the uploader does, at every activation)."""
        return int(getattr(self.transport, "inflight_limit", 0))

    @property
    def acks_pending(self) -> int:
        """Ack-required messages sent on this link whose ack has not come back yet."""
        return len(self._acks)

    # -- sending --------------------------------------------------------------------------

    def message(
        self, payload: Any, *, ack_required: bool = False, actor: str = "", message_id: str = ""
    ) -> Message[Any]:
        """A new message from this gateway to the link's peer (a fresh message id unless
        ``message_id`` is given), not sent. Raises nothing: fields are not validated here
        (the receiver refuses an ``actor`` or ``message_id`` over 128 characters)."""
        return Message.create(
            self.gateway,
            self.peer,
            payload,
            ack_required=ack_required,
            actor=actor,
            message_id=message_id or None,
        )

    def send(
        self, payload: Payload, *, ack_required: bool = False, actor: str = ""
    ) -> Result[None, LinkError]:
        """``publish(message(payload, ...))`` without building the message: the codec
        writes the envelope's bytes directly (the common case of an actor sending to the
        peer). Same results, stats and ack deadline as :meth:`publish`: ``Ok(None)`` once
        the transport took it, ``Err(LinkError)`` if it cannot be encoded or the link is
        not connected (counted; nothing is queued). Raises nothing."""
        message_id = new_message_id()
        try:
            topic, data = self.codec.encode_new(
                self.gateway,
                self.peer,
                payload,
                message_id=message_id,
                ack_required=ack_required,
                actor=actor,
            )
        except EncodeError as e:
            return Err(LinkError(str(e)))
        if not self.transport.publish(topic, data, self.qos):
            self.stats.publish_failures += 1
            return Err(LinkError(f"link {self.name} is not connected"))
        if ack_required:
            self._acks.start(message_id)
        self.last_sent = self._clock()
        self.last_sent_wall = time.time()
        self.stats.messages_out[type(payload).type_name] += 1
        return _OK

    def publish(self, message: Message[Any]) -> Result[None, LinkError]:
        """Encode and publish ``message`` (its header names the gateways). An ack-required
        message starts an ack deadline (a late ack makes the link ``awaiting_peer``).
        ``Ok(None)`` once the transport took it (written, or queued in the socket buffer);
        ``Err(LinkError)`` if encoding fails or the link is not connected, counted in the
        link's stats; nothing is queued for later (durable delivery is what events are
        for). Raises nothing."""
        try:
            payload = self.codec.encode(message)
        except EncodeError as e:
            return Err(LinkError(str(e)))
        header = message.header
        return self.publish_bytes(header, payload)

    def publish_bytes(self, header: Header, payload: bytes) -> Result[None, LinkError]:
        """Publish an already encoded envelope on ``header``'s topic (stored events are
        re-sent this way). Results, stats and ack deadline as :meth:`publish`."""
        topic = self.codec.header_topic(header)
        if not self.transport.publish(topic, payload, self.qos):
            self.stats.publish_failures += 1
            return Err(LinkError(f"link {self.name} is not connected"))
        if header.ack_required:
            self._acks.start(header.message_id)
        self.last_sent = self._clock()
        self.last_sent_wall = time.time()
        self.stats.messages_out[self.type_label(header.message_type)] += 1
        return Ok(None)

    def subscribe_raw(self, topic_filter: str, qos: QOS | None = None) -> None:
        """Subscribe to a topic outside ``gw/`` on this link's broker, at ``qos`` (default:
        the link's). The subscription is restored after every reconnect and is part of
        "every subscription acknowledged"; messages on it reach
        :meth:`LinkOwner.on_link_raw_message`. Raises :class:`ConfigError` (a
        ``ValueError``) for a filter that would also match ``gw/`` topics, shared
        (``$share/<group>/...``) or not."""
        levels = topic_filter.split("/")
        if levels[0] == "$share" and len(levels) > 2:
            levels = levels[2:]  # a shared subscription: $share/<group>/<filter>
        if levels[0] in ("gw", "+", "#"):
            # '+/...' and '#' would also match gw/ topics, which go to the codec, not here
            # (and a shared one would deliver each such message a second time).
            raise ConfigError(f"raw filter {topic_filter!r} overlaps the gw/ topics")
        self.transport.subscribe(topic_filter, self.qos if qos is None else qos)

    def unsubscribe_raw(self, topic_filter: str) -> None:
        """Forget a raw subscription (unsubscribed now if connected; a filter never
        subscribed is ignored). Raises nothing."""
        self.transport.unsubscribe(topic_filter)

    def publish_raw(
        self, topic: str, payload: bytes, qos: QOS | None = None, retain: bool = False
    ) -> Result[None, LinkError]:
        """Publish bytes on any topic of this link's broker, at ``qos`` (default: the
        link's), retained if asked. ``Ok(None)`` once the transport took them,
        ``Err(LinkError)`` if not connected (counted). No ack, no retry. Raises nothing."""
        if not self.transport.publish(topic, payload, self.qos if qos is None else qos, retain):
            self.stats.publish_failures += 1
            return Err(LinkError(f"link {self.name} is not connected"))
        self.stats.raw_out += 1
        self.last_sent = self._clock()
        self.last_sent_wall = time.time()
        return Ok(None)

    def send_ack(self, header: Header) -> None:
        """Acknowledge a message the peer sent (on this link, where the peer waits for it).

        Acks are gathered and sent at the end of the current loop iteration: one ``gw.ack``
        for a lone message, one ``gw.acks`` for a burst (a store commit of many events).
        An ack that cannot be sent (the link went down) is dropped: the peer re-sends the
        message and the receiver de-duplicates it. Needs the running loop; raises
        nothing else."""
        self._ack_batch.append(header.message_id)
        if len(self._ack_batch) == 1:
            asyncio.get_running_loop().call_soon(self._flush_acks)

    def _flush_acks(self) -> None:
        ids, self._ack_batch = self._ack_batch, []
        per_message = self.codec.max_ids_per_ack
        for start in range(0, len(ids), per_message):
            chunk = ids[start : start + per_message]
            payload = Ack(ack_message_id=chunk[0]) if len(chunk) == 1 else Acks(ids=chunk)
            if self.publish(self.message(payload)).is_ok():
                self.stats.acks_sent += len(chunk)

    def ping(self) -> None:
        """Send an ack-required ping ("are you there?"); any valid message from the peer
        answers it. Not connected: nothing is sent (counted as a publish failure). The link
        pings by itself when idle and when it waits for the peer; raises nothing."""
        message = self.message(Ping(), ack_required=True)
        if self.publish(message).is_ok():
            self.stats.pings_sent += 1
            self._pings.add(message.header.message_id)

    # -- transport callbacks (loop) ---------------------------------------------------------

    def on_transport_connected(self) -> None:
        """Transport callback: connected (CONNACK). Publishes presence, arms the idle
        timers; the link waits for its SUBACKs and for the peer."""
        if self.state is LinkState.stopped:
            return
        self._all_subscribed = False
        self._connected_at = self._clock()
        if self.settings.uses_presence:
            self._publish_presence(online=True)
        self._input(LinkInput.mqtt_connected)
        if not self.broker_only:
            self._arm_poll()
            self._arm_silence()
        if not self.transport.subscriptions:
            self._subscribed()

    def on_transport_disconnected(self, reason: str) -> None:
        """Transport callback: the connection was lost. Ack deadlines are dropped (what
        was in flight is the sender's to re-send: events from the store); ``connecting``
        again while the transport reconnects."""
        if self.state is LinkState.stopped:
            return
        self._cancel_timers()
        self._acks.cancel_all()
        self._unanswered_reported = False
        self._pings.clear()
        self._all_subscribed = False
        self.log.info("disconnected from %s: %s", self.transport.broker_label, reason)
        self._note_error(reason)
        self._input(LinkInput.mqtt_disconnected)

    def on_transport_connect_failed(self, reason: str) -> None:
        """Transport callback: one connect attempt failed; passed on to the owner."""
        self._note_error(reason)
        self._owner.on_link_connect_failed(self, reason)

    def _note_error(self, reason: str) -> None:
        self.last_error = reason
        self.last_error_wall = time.time()

    def on_transport_read_done(self) -> None:
        """Transport callback: a read batch ended; the owner dispatches what it brought."""
        self._read_done()

    def on_transport_problem(self, kind: str, detail: str) -> None:
        """Transport callback: a problem with the connection (``client_id_clash``, say);
        passed on to the owner's ``on_link_problem``."""
        self._owner.on_link_problem(self, kind, detail)

    def on_transport_broker_changed(self, broker: str) -> None:
        """Transport callback: failed over (or back) to ``broker``; passed on."""
        self._owner.on_link_broker_changed(self, broker)

    def on_transport_suback(self, topic: str, granted: bool) -> None:
        """Transport callback: a SUBACK. A refusal is reported as a ``subscribe`` problem
        (the link then never becomes active on this connection); the last grant moves the
        link on."""
        if not granted:
            self._owner.on_link_problem(self, "subscribe", f"broker refused {topic}")
            return
        if self.transport.all_subscribed and not self._all_subscribed:
            self._subscribed()

    def on_transport_message(self, topic: str, payload: bytes) -> None:
        """Transport callback: one received message. ``gw/`` topics are decoded, checked
        (from the peer, to us), counted, acked if asked and de-duplicated: acks clear
        deadlines, events go to :meth:`LinkOwner.on_link_event`, other new messages to the
        receive queue. The peer's presence and raw topics go to the owner. Undecodable
        input is counted and reported, never raised; so is an error past the codec (a bug,
        or a subscriber model's validator): raised here, it would end the transport's read
        batch, leaving the rest of it unread until the next packet."""
        try:
            if not topic.startswith(self._gw_prefix):
                self.stats.raw_in += 1
                self._owner.on_link_raw_message(self, topic, payload)
            elif topic == self.peer_status_topic:
                self._on_presence(payload)
            else:
                self._on_gw_message(topic, payload)
        except Exception as e:  # reported: the next message must still flow
            self.log.debug("handling a message on %s failed", topic, exc_info=e)
            self._owner.on_link_problem(
                self, "receive_error", f"{type(e).__name__}: {e} (topic {topic[:200]!r})"
            )

    def _on_gw_message(self, topic: str, payload: bytes) -> None:
        message = self._decode(topic, payload)
        if isinstance(message, DecodeError):
            self.stats.decode_errors[message.reason] += 1
            self._owner.on_link_problem(self, f"decode.{message.reason}", str(message))
            return
        header = message.header
        if header.src != self.peer or header.dst != self.gateway:
            self.stats.rejected_src += 1
            self._owner.on_link_problem(
                self, "decode.wrong_peer", f"{header.src}->{header.dst} on link to {self.peer}"
            )
            return
        self.last_heard = self._clock()
        self.last_heard_wall = time.time()
        message_type = header.message_type
        label = self._labels.get(message_type)
        if label is None:
            label = self.type_label(message_type)
            if label == message_type:  # registered: types are never unregistered
                self._labels[message_type] = label
        self.stats.messages_in[label] += 1
        if message_type in (_ACK, _ACKS):
            self._on_acks(message)
            return
        if self._pings or self.state is not _ACTIVE:
            self._heard()  # else it has nothing to do (no pings to answer, already active)
        if isinstance(message.payload, Event):
            # Events are de-duplicated by the store (it survives restarts) and acked only
            # once stored, so they skip the in-memory window.
            self._owner.on_link_event(self, message)
            return
        duplicate = self._dedup.seen(header.message_id)
        if header.ack_required:
            self.send_ack(header)
        if duplicate:
            self.stats.duplicates += 1
            return
        if message_type != _PING:
            self._receive(self.name, message)

    def _on_acks(self, message: Message[Any]) -> None:
        self._answered()  # any ack: our publishes reach the peer
        self._heard()
        if message.header.message_type == _ACK:
            self._on_ack(message.payload.ack_message_id)
        else:
            for message_id in message.payload.ids:
                self._on_ack(message_id)

    def type_label(self, message_type: str) -> str:
        """The stats label of a message type: itself when registered, else ``other`` (a
        peer chooses the types it sends; counters keyed by them must stay bounded)."""
        return message_type if message_type in self.codec.registry else OTHER

    # -- internals ---------------------------------------------------------------------------

    def _publish_presence(self, *, online: bool) -> None:
        payload = presence_payload(self.gateway, online)
        self.transport.publish(self.status_topic, payload, QOS.AtLeastOnce, retain=True)

    def _on_presence(self, payload: bytes) -> None:
        try:
            presence = str(json.loads(payload)["state"])
        except (ValueError, KeyError, TypeError):
            self.stats.decode_errors["presence"] += 1
            return
        if presence != self.peer_presence:
            self.peer_presence = presence
            self._owner.on_link_presence(self, presence)

    def _subscribed(self) -> None:
        self._all_subscribed = True
        self._input(LinkInput.all_subscribed)
        if self.broker_only:
            # No gateway behind a plain broker: connected and subscribed is all there is.
            self._input(LinkInput.peer_message)
            return
        if self.state is LinkState.awaiting_peer:
            # Subscribed, so an answer can reach us now: ask the peer to show itself.
            self.ping()

    def _on_ack(self, message_id: str) -> None:
        self.stats.acks_received += 1
        if self._acks.clear(message_id):
            self._owner.on_link_acked(self, message_id)

    def _on_ack_timeout(self, message_ids: list[str]) -> None:
        self._pings.difference_update(message_ids)
        self.stats.ack_timeouts += len(message_ids)
        self.log.info("%d ack(s) late from %s", len(message_ids), self.peer)
        self._input(LinkInput.ack_timeout)
        if self.transport.connected() and self._all_subscribed:
            self.ping()
        limit = self.settings.ack_timeout_seconds * self.settings.unanswered_problem_timeouts
        unanswered = self._acks.unanswered_seconds()
        if not self._unanswered_reported and unanswered >= limit - _CLOCK_SLACK:
            self._unanswered_reported = True
            self.stats.unanswered_reports += 1
            self._owner.on_link_problem(
                self,
                "acks_unanswered",
                f"{self._acks.unanswered} message(s) to {self.peer} unacknowledged for "
                f"{unanswered:.1f} s: our publishes are not reaching the peer",
            )

    def _heard(self) -> None:
        """A valid message from the peer. It answers our pings and makes the link active,
        unless acks are overdue: then only an ack does (a one-way path is not active)."""
        if self._acks.overdue:
            return
        if self._pings:
            # A ping asks "are you there?": any valid message from the peer answers it (a
            # ping sent before the peer had subscribed is never acked, and needs no ack).
            for ping_id in self._pings:
                self._acks.clear(ping_id)
            self._pings.clear()
        if self.state is not _ACTIVE:
            self._input(LinkInput.peer_message)

    def _answered(self) -> None:
        if self._unanswered_reported:
            self.log.warning("%s acknowledges our messages again", self.peer)
        self._unanswered_reported = False
        self._acks.answered()

    @property
    def acks_overdue(self) -> bool:
        """An ack deadline passed and the peer has acked nothing since: not active."""
        return self._acks.overdue

    @property
    def acks_unanswered(self) -> int:
        """Messages to the peer without an ack (overdue or within their deadline)."""
        return self._acks.unanswered

    def _input(self, event: LinkInput) -> None:
        """The one place the state changes: log, count, report."""
        old = self.state
        new = transition(old, event)
        if new is None:
            self.invalid_inputs += 1
            self.log.warning("ignored %s in state %s", event.value, old.value)
            return
        if new is old:
            return
        self.state = new
        self.stats.state_changes[f"{old.value}->{new.value}"] += 1
        # The owner logs the change for the gateway (once, in the comm_event category).
        self.log.debug("%s -> %s (%s)", old.value, new.value, event.value)
        self._owner.on_link_state(self, old, new, event)

    # Idle timers are lazy: sending or hearing only updates a timestamp, and the timer,
    # when it fires, re-arms itself for the time that remains. No timer churn per message.

    def _arm_poll(self) -> None:
        quiet_since = max(self.last_sent, self._connected_at)
        due = quiet_since + self.settings.poll_seconds - self._clock()
        self._poll_timer = asyncio.get_running_loop().call_later(max(0.0, due), self._on_poll)

    def _on_poll(self) -> None:
        self._poll_timer = None
        if not self.transport.connected():
            return
        now = self._clock()
        if now - max(self.last_sent, self._connected_at) >= self.settings.poll_seconds:
            if self._all_subscribed:
                self.ping()
            else:
                self._connected_at = now  # still subscribing: look again a period later
        self._arm_poll()

    def _arm_silence(self) -> None:
        heard_since = max(self.last_heard, self._connected_at)
        due = heard_since + self.settings.peer_timeout_seconds - self._clock()
        self._silence_timer = asyncio.get_running_loop().call_later(max(0.0, due), self._on_silence)

    def _on_silence(self) -> None:
        self._silence_timer = None
        if not self.transport.connected():
            return
        now = self._clock()
        if now - max(self.last_heard, self._connected_at) >= self.settings.peer_timeout_seconds:
            self._input(LinkInput.peer_silent)
            if self._all_subscribed:
                self.ping()
            self._connected_at = now  # report silence once per period, not in a tight loop
        self._arm_silence()

    def _cancel_timers(self) -> None:
        for timer in (self._poll_timer, self._silence_timer):
            if timer is not None:
                timer.cancel()
        self._poll_timer = self._silence_timer = None
