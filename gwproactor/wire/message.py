"""Typed messages: the envelope ``{header, payload}`` and the payload base classes.

A payload type is a pydantic model derived from :class:`Payload` with a ``type_name``
class variable (an allowed name, see :mod:`gwproactor.wire.names`). Payload types are made known
to a link's codec through a :class:`~gwproactor.wire.codec.MessageRegistry`.

Messages between communicators inside one gateway use the same envelope; their ``header.dst``
names the communicator. Messages on a link name gateways in ``src``/``dst`` and may name a
communicator inside the destination gateway in ``header.actor``.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from gwproactor.wire.names import validate_name

__all__ = (
    "Ack",
    "Acks",
    "AnyEvent",
    "Event",
    "Header",
    "Message",
    "Payload",
    "PayloadT",
    "Ping",
    "RawMessage",
    "new_message_id",
)


MAX_ID_LENGTH = 128  # message ids and actor names in a header


class Header(BaseModel):
    """Routing facts of a message.

    ``src``/``dst``: gateway names on a link, communicator names inside a gateway.
    ``actor``: for a message on a link, the communicator in ``dst`` that should get it; when
    empty the receiving gateway routes by ``message_type``.
    ``message_id``: unique per message (see :func:`new_message_id`); an event keeps its id
    for life, which is how receivers de-duplicate re-uploads.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    src: str
    dst: str
    message_type: str
    # Bounded: a receiver remembers ids (de-duplication) and stores event ids, so an
    # unbounded id from a peer would be a way to fill its memory or its disk.
    message_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    ack_required: bool = False
    actor: str = Field(default="", max_length=MAX_ID_LENGTH)


class Payload(BaseModel):
    """Base of every payload type. Unknown fields are ignored, so that a newer peer can add
    fields without breaking an older one (a field gateway fleet is rarely upgraded at once)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("type_name"):
            validate_name(cls.type_name, "message type name")


PayloadT = TypeVar("PayloadT", bound=Payload)


class Message(BaseModel, Generic[PayloadT]):
    """An envelope: a header and a typed payload. Immutable."""

    model_config = ConfigDict(frozen=True)

    header: Header
    payload: PayloadT
    # The payload's JSON as it came, for a codec whose peers' payloads must be stored and
    # forwarded unchanged (gwproto events), is kept in pydantic's private-state slot
    # (``__pydantic_private__``, None when the payload's own serializer will do) without
    # declaring a private attribute: a declared one makes pydantic run a post-init hook
    # on every validated message (~15 % of the receive path's CPU, issue 15).

    @property
    def payload_json(self) -> bytes | None:
        """The payload's original JSON if the codec kept it (see :mod:`gwproactor.wire`)."""
        private = self.__pydantic_private__
        return None if private is None else private.get("_payload_json")

    def keep_payload_json(self, payload_json: bytes) -> None:
        """For codecs, at decode time: remember the payload's original JSON (the message's
        fields stay immutable)."""
        _set(self, "__pydantic_private__", {"_payload_json": payload_json})

    @property
    def src(self) -> str:
        return self.header.src

    @property
    def dst(self) -> str:
        return self.header.dst

    @property
    def message_type(self) -> str:
        return self.header.message_type

    @property
    def message_id(self) -> str:
        return self.header.message_id

    @classmethod
    def create(
        cls,
        src: str,
        dst: str,
        payload: Payload,
        *,
        ack_required: bool = False,
        actor: str = "",
        message_id: str | None = None,
    ) -> Message[Any]:
        """Build a message without re-validating trusted fields (names are validated where
        they enter the system: settings, registries)."""
        # What ``model_construct`` makes when every field is given, without its per-call
        # work (and without looking ``Message[Any]`` up in pydantic's generic-class cache):
        # this runs for every raw message, ack and message between actors.
        header = _new(Header)
        _set(
            header,
            "__dict__",
            {
                "src": src,
                "dst": dst,
                "message_type": type(payload).type_name,
                "message_id": message_id or new_message_id(),
                "ack_required": ack_required,
                "actor": actor,
            },
        )
        _set(header, "__pydantic_fields_set__", set(_HEADER_FIELDS))
        _set(header, "__pydantic_extra__", None)
        _set(header, "__pydantic_private__", None)
        message = _new(_MESSAGE_ANY)
        _set(message, "__dict__", {"header": header, "payload": payload})
        _set(message, "__pydantic_fields_set__", {"header", "payload"})
        _set(message, "__pydantic_extra__", None)
        _set(message, "__pydantic_private__", None)
        return message


def _monotonic() -> float:
    return time.monotonic()


def _time_ns() -> int:
    return time.time_ns()


_new = object.__new__
_set = object.__setattr__
_HEADER_FIELDS = frozenset(Header.model_fields)
_MESSAGE_ANY: type[Message[Any]] = Message[Any]


class Ack(Payload):
    """Acknowledges the message whose id is ``ack_message_id``; sent on the link it came on."""

    type_name: ClassVar[str] = "gw.ack"
    ack_message_id: str


class Acks(Payload):
    """Acknowledges several messages at once: a burst of events stored in one commit is
    acknowledged with one message instead of one per event."""

    type_name: ClassVar[str] = "gw.acks"
    ids: list[str]


class Ping(Payload):
    """Sent on an idle link or after an ack timeout; ack required, so the peer answers."""

    type_name: ClassVar[str] = "gw.ping"


class RawMessage(Payload):
    """A message on a topic outside ``gw/``: the bytes as they came, where from, and (for a
    typed subscription) the payload validated into the subscriber's model. Delivered to the
    communicator that subscribed to a matching filter."""

    type_name: ClassVar[str] = "gw.raw"
    link: str
    topic: str
    payload: bytes
    parsed: Payload | None = None  # the payload validated into the subscriber's model
    # time.monotonic() when the bytes were read: a consumer that queues raw messages can
    # measure its lag as time.monotonic() - received_at.
    received_at: float = Field(default_factory=_monotonic)

    @classmethod
    def create(
        cls, link: str, topic: str, payload: bytes, parsed: Payload | None = None
    ) -> RawMessage:
        """Build one from trusted values without validating them (the raw router's hot
        path: the values come from the link and the broker as str and bytes)."""
        message = _new(cls)
        _set(
            message,
            "__dict__",
            {
                "link": link,
                "topic": topic,
                "payload": payload,
                "parsed": parsed,
                "received_at": time.monotonic(),
            },
        )
        _set(message, "__pydantic_fields_set__", {"link", "topic", "payload", "parsed"})
        _set(message, "__pydantic_extra__", None)
        _set(message, "__pydantic_private__", None)
        return message


# What the store's INTEGER column holds (a signed 64-bit integer): a peer's event outside it
# would fail the store's whole group commit with an OverflowError.
_MIN_TIME_NS = -(2**63)
_MAX_TIME_NS = 2**63 - 1


class Event(Payload):
    """Base of events: durable, acknowledged by the upstream peer, re-uploaded after an outage.

    ``src`` is the gateway that generated the event (filled by ``generate_event`` when empty);
    ``time_ns`` is the wall-clock time it happened, used for queries only (timers use the
    monotonic clock).
    """

    src: str = ""
    time_ns: int = Field(default_factory=_time_ns, ge=_MIN_TIME_NS, le=_MAX_TIME_NS)


class AnyEvent(Event):
    """An event of a type this gateway does not know. It keeps every field, so it can be
    stored, acknowledged and forwarded upstream unchanged; it is not given to actors."""

    model_config = ConfigDict(frozen=True, extra="allow")

    # Required here (not defaulted as in Event), so that only event-shaped payloads match.
    src: str
    time_ns: int = Field(ge=_MIN_TIME_NS, le=_MAX_TIME_NS)


# A process-wide prefix drawn at start plus a counter: unique across restarts (the prefix
# changes), unique within a run (the counter), and about ten times cheaper than uuid4.
# The counter has a fixed width, so that the ids of one run sort in the order they were
# made: the store's event-id index then grows at one end instead of splitting pages in the
# middle ("…-ff" sorted after "…-100" when the counter was unpadded hex).
_ID_PREFIX = os.urandom(6).hex()
# 12 hex digits: 2**48 ids per run (89 years at 100,000 a second). Past that the ids grow
# longer: still unique, no longer in order. (A literal in the f-string: a nested width
# would cost a format call per id.)
_ID_COUNTER = itertools.count(1)


def new_message_id() -> str:
    """A new unique message id: ``<12 random hex digits>-<counter, 12 hex digits>`` (25
    characters). Ids made in one process sort (as strings) in the order they were made.
    Thread-safe (``itertools.count`` is atomic under the GIL). Opaque to peers: a receiver
    must not parse it."""
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):012x}"
