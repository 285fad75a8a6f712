"""Turning messages into topic and bytes and back.

The wire format is JSON: ``{"header": {...}, "payload": {...}}`` on the topic
``gw/<src>/to/<dst>/<message_type>``. Decoding uses the message type from the topic to pick
one pre-built envelope model, which pydantic validates from the raw bytes in a single pass
(measured faster here than ``json.loads`` alone, see the performance note in the README).

Decoding never raises for bad input: it returns ``Err(DecodeError)`` with a short ``reason``
that the link counts per reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pydantic import ValidationError
from pydantic_core import SchemaValidator
from result import Err, Ok, Result

from gwproactor.errors import ConfigError, DecodeError, EncodeError
from gwproactor.wire.message import Ack, Acks, AnyEvent, Event, Header, Message, Payload, Ping
from gwproactor.wire.names import TopicParts, parse_topic, topic_for, validate_name

__all__ = ("DEFAULT_MAX_PAYLOAD_BYTES", "Codec", "JsonCodec", "MessageRegistry")

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024

_HEADER_SERIALIZER = Header.__pydantic_serializer__
_TOPIC_CACHE_SIZE = 4096
_ACK_REQUIRED = {
    True: b'","ack_required":true,"actor":"',
    False: b'","ack_required":false,"actor":"',
}
_PAYLOAD = b'"},"payload":'


class MessageRegistry:
    """Payload types by type name. Registries compose: ``include`` another registry (a
    namespace of types, such as the ones an actor package defines) to use its types too.

    ``gw.ack``, ``gw.acks`` and ``gw.ping`` are always registered. Not thread-safe; build registries
    before the proactor starts.
    """

    def __init__(self, *payload_types: type[Payload]) -> None:
        self._types: dict[str, type[Payload]] = {}
        self.register(Ack, Acks, Ping)
        self.register(*payload_types)

    def register(self, *payload_types: type[Payload]) -> None:
        """Add payload types. Raises ConfigError if a type has no ``type_name`` or if the
        name is taken by a different class; InvalidNameError if the name is not allowed."""
        for payload_type in payload_types:
            name = validate_name(payload_type.type_name, "message type name")
            existing = self._types.get(name)
            if existing is not None and existing is not payload_type:
                raise ConfigError(
                    f"message type {name!r} is registered twice: "
                    f"{existing.__qualname__} and {payload_type.__qualname__}"
                )
            self._types[name] = payload_type

    def include(self, other: MessageRegistry) -> None:
        """Register every type of ``other`` here as well."""
        self.register(*other._types.values())

    def get(self, type_name: str) -> type[Payload] | None:
        return self._types.get(type_name)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._types

    def __iter__(self) -> Iterable[str]:
        return iter(sorted(self._types))

    @property
    def type_names(self) -> list[str]:
        return sorted(self._types)


class Codec(Protocol):
    """What a link needs of a wire format. Links hold one and never ask which it is.

    ``max_ids_per_ack``: how many message ids one ack may carry (1: no batched acks).
    """

    max_ids_per_ack: int
    registry: MessageRegistry

    def refresh(self) -> None:
        """Forget what was derived from the registry (after registering more types)."""

    def subscription(self, peer: str, gateway: str) -> str:
        """The topic filter for every message from ``peer`` to ``gateway``."""

    def header_topic(self, header: Header) -> str:
        """The topic a message with this header is published on."""

    def can_carry_event(self, type_name: str) -> bool:
        """Whether the peer can decode and ack an event of this type."""

    def encode(self, message: Message[Any]) -> bytes:
        """The payload bytes of ``message``; raises EncodeError."""

    def encode_new(
        self,
        src: str,
        dst: str,
        payload: Payload,
        *,
        message_id: str,
        ack_required: bool = False,
        actor: str = "",
    ) -> tuple[str, bytes]:
        """The topic and bytes of a new message (as ``Message.create`` would make it)."""

    def encode_with_payload_json(self, header: Header, payload_json: bytes) -> bytes:
        """The payload bytes around a stored event's payload JSON; raises EncodeError."""

    def decode(self, topic: str, payload: bytes) -> Result[Message[Any], DecodeError]:
        """The message received on ``topic``; never raises for bad input."""

    def decode_message(self, topic: str, payload: bytes) -> Message[Any] | DecodeError:
        """:meth:`decode` without the Result around it (links call it per message)."""


class JsonCodec:
    """Encodes and decodes gateway messages for one link.

    ``max_payload_bytes`` bounds what ``decode`` accepts (bigger is a ``too_large`` error).
    Instances are cheap and immutable after construction except through ``refresh`` (call
    it after registering more types).
    """

    max_ids_per_ack = 500  # gw.acks carries a burst of event acks in one message

    def __init__(
        self, registry: MessageRegistry, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    ) -> None:
        self.registry = registry
        self.max_payload_bytes = max_payload_bytes
        self._envelopes: dict[str, type[Message[Any]]] = {}
        # Topic -> (its names, its envelope's validate_json): a repeated topic of a known
        # type decodes with one lookup (derived from the registry: cleared by refresh).
        self._known: dict[str, tuple[TopicParts, Callable[[bytes], Any]]] = {}
        self._any_event = Message[AnyEvent]
        # Topics repeat (the same src, dst and type over and over): parse each once.
        self._topics: dict[str, TopicParts | None] = {}
        # (src, dst, type) → (topic, the envelope's bytes up to the message id's value).
        self._heads: dict[tuple[str, str, str], tuple[str, bytes]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Forget the per-type envelope models (after registering more types). They are
        built on first use: a gateway knowing many types pays only for those it receives."""
        self._envelopes = {}
        self._known = {}

    def _envelope(self, type_name: str) -> type[Message[Any]] | None:
        payload_type = self.registry.get(type_name)
        if payload_type is None:
            return None
        envelope = self._envelopes[type_name] = Message[payload_type]  # type: ignore[valid-type]
        return envelope

    # -- encode --------------------------------------------------------------------------

    @staticmethod
    def topic(message: Message[Any]) -> str:
        header = message.header
        return topic_for(header.src, header.dst, header.message_type)

    @staticmethod
    def header_topic(header: Header) -> str:
        return topic_for(header.src, header.dst, header.message_type)

    @staticmethod
    def subscription(peer: str, gateway: str) -> str:
        return topic_for(peer, gateway, "#")

    @staticmethod
    def can_carry_event(type_name: str) -> bool:
        return True

    @staticmethod
    def encode(message: Message[Any]) -> bytes:
        """The JSON bytes of ``message``. The payload is serialized by its own class, so a
        subclass keeps all its fields whatever the envelope was declared with."""
        payload = message.payload
        try:
            return b"".join(
                (
                    b'{"header":',
                    _HEADER_SERIALIZER.to_json(message.header),
                    b',"payload":',
                    type(payload).__pydantic_serializer__.to_json(payload),
                    b"}",
                )
            )
        except Exception as e:  # pydantic raises PydanticSerializationError and friends
            raise EncodeError(f"cannot encode {message.header.message_type}: {e}") from e

    def encode_new(
        self,
        src: str,
        dst: str,
        payload: Payload,
        *,
        message_id: str,
        ack_required: bool = False,
        actor: str = "",
    ) -> tuple[str, bytes]:
        """The topic and bytes of a new message, the same as ``topic``/``encode`` of
        ``Message.create(src, dst, payload, ...)``, without building the message: the
        header's bytes are written directly (its names are validated where they enter, so
        only the id and the actor may need JSON escaping, which takes the general path).
        Raises EncodeError."""
        type_name = type(payload).type_name
        key = (src, dst, type_name)
        head = self._heads.get(key)
        if head is None:
            head = self._head(key)
        topic, start = head
        try:
            payload_json = type(payload).__pydantic_serializer__.to_json(payload)
        except Exception as e:  # pydantic raises PydanticSerializationError and friends
            raise EncodeError(f"cannot encode {type_name}: {e}") from e
        if _plain(message_id) and _plain(actor):
            return topic, b"".join(
                (
                    start,
                    message_id.encode(),
                    _ACK_REQUIRED[ack_required],
                    actor.encode(),
                    _PAYLOAD,
                    payload_json,
                    b"}",
                )
            )
        header = Header.model_construct(
            src=src,
            dst=dst,
            message_type=type_name,
            message_id=message_id,
            ack_required=ack_required,
            actor=actor,
        )
        return topic, self.encode_with_payload_json(header, payload_json)

    def _head(self, key: tuple[str, str, str]) -> tuple[str, bytes]:
        src, dst, type_name = key
        header = Header.model_construct(
            src=src, dst=dst, message_type=type_name, message_id="", ack_required=False, actor=""
        )
        header_json = _HEADER_SERIALIZER.to_json(header)
        start = b'{"header":' + header_json[: header_json.index(b'"message_id":"') + 14]
        if len(self._heads) >= _TOPIC_CACHE_SIZE:
            self._heads.clear()
        head = self._heads[key] = (topic_for(src, dst, type_name), start)
        return head

    @staticmethod
    def encode_with_payload_json(header: Header, payload_json: bytes) -> bytes:
        """Envelope bytes around an already encoded payload (used for stored events, which
        are kept as payload JSON and re-wrapped for whichever link uploads them)."""
        if not payload_json.startswith(_NATIVE_EVENT_START):
            payload_json = _native_event_json(payload_json)
        return b"".join(
            (b'{"header":', _HEADER_SERIALIZER.to_json(header), b',"payload":', payload_json, b"}")
        )

    # -- decode --------------------------------------------------------------------------

    def decode(self, topic: str, payload: bytes) -> Result[Message[Any], DecodeError]:
        """Decode a message received on ``topic``. Never raises for bad input.

        Checks, in order: size, topic shape and names, known type (an unknown type that is
        shaped like an event decodes as :class:`AnyEvent`), envelope validity, and that the
        header agrees with the topic (``mismatch`` otherwise).
        """
        decoded = self.decode_message(topic, payload)
        return Err(decoded) if isinstance(decoded, DecodeError) else Ok(decoded)

    def decode_message(self, topic: str, payload: bytes) -> Message[Any] | DecodeError:
        """:meth:`decode` without the Result around it (what links call per message)."""
        known = self._known.get(topic)
        if known is None or len(payload) > self.max_payload_bytes:
            return self._decode_new(topic, payload)
        # The common case: as _decode_new without the topic's parsing and the type's lookup,
        # the envelope's validator called directly (model_validate_json is a Python frame
        # around it).
        parts, validate_json = known
        try:
            message = validate_json(payload)
        except ValidationError as e:
            return DecodeError(_reason(e), _summarize(e), topic)
        header = message.header
        if (
            header.src == parts.src
            and header.dst == parts.dst
            and header.message_type == parts.message_type
        ):
            return message  # type: ignore[no-any-return]
        return _mismatch(header, topic)

    def _remember(self, topic: str, parts: TopicParts, envelope: type[Message[Any]]) -> None:
        """Decode ``topic`` the short way from now on (bounded, like the topic cache)."""
        validator = envelope.__pydantic_validator__
        if isinstance(validator, SchemaValidator):  # built (not a placeholder)
            if len(self._known) >= _TOPIC_CACHE_SIZE:
                self._known.clear()
            self._known[topic] = (parts, validator.validate_json)

    def _decode_new(self, topic: str, payload: bytes) -> Message[Any] | DecodeError:
        """:meth:`decode_message` of a topic not yet known (its first message, a type not
        registered, a bad topic) or of a payload too large."""
        if len(payload) > self.max_payload_bytes:
            return DecodeError(
                "too_large", f"{len(payload)} bytes > {self.max_payload_bytes}", topic
            )
        topics = self._topics
        if topic in topics:
            parts = topics[topic]
        else:
            parts = parse_topic(topic)
            if len(topics) >= _TOPIC_CACHE_SIZE:
                topics.clear()  # bounded: a flood of distinct bad topics cannot grow it
            topics[topic] = parts
        if parts is None:
            return DecodeError("topic", "not gw/<src>/to/<dst>/<message_type>", topic)
        envelope = self._envelopes.get(parts.message_type) or self._envelope(parts.message_type)
        try:
            if envelope is not None:
                message = envelope.model_validate_json(payload)
            else:
                message = self._any_event.model_validate_json(payload)
        except ValidationError as e:
            if envelope is None:
                return DecodeError("unknown_type", parts.message_type, topic)
            return DecodeError(_reason(e), _summarize(e), topic)
        if envelope is not None:
            self._remember(topic, parts, envelope)
        header = message.header
        if (
            header.src != parts.src
            or header.dst != parts.dst
            or header.message_type != parts.message_type
        ):
            return _mismatch(header, topic)
        return message


def _mismatch(header: Header, topic: str) -> DecodeError:
    return DecodeError(
        "mismatch", f"header says {header.src}->{header.dst} {header.message_type}", topic
    )


def _plain(text: str) -> bool:
    """Whether ``text`` is its own JSON string body (printable ASCII, no quote or backslash)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


# Every event payload of ours starts with Event's first field (see EventManager._prepare).
_NATIVE_EVENT_START = b'{"src":'


def _native_event_json(payload_json: bytes) -> bytes:
    """A stored event payload that came from a gwproto link (kept as the 4.x gateway sent
    it), for a native link: our ``src`` and ``time_ns`` in front of every gwproto field, so
    that a native receiver decodes it (as its model or as AnyEvent) and a gwproto link
    further up can give the 4.x payload back unchanged. Anything else passes as it is."""
    try:
        fields = json.loads(payload_json)
    except ValueError:
        return payload_json
    if not isinstance(fields, dict) or "TypeName" not in fields:
        return payload_json
    time_ms, src = fields.get("TimeCreatedMs"), fields.get("Src")
    if not isinstance(time_ms, int) or not isinstance(src, str):
        return payload_json
    native = {"src": src, "time_ns": time_ms * 1_000_000, **fields}
    return json.dumps(native, separators=(",", ":"), ensure_ascii=False).encode()


def _reason(error: ValidationError) -> str:
    """``json`` (not JSON at all), ``payload`` (the payload does not fit its type) or
    ``envelope`` (the header or the envelope's shape is wrong)."""
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return "json"
    if first["loc"] and first["loc"][0] == "payload":
        return "payload"
    return "envelope"


def _summarize(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{loc}: {first['msg']}{more}"


def is_event(message: Message[Any]) -> bool:
    """Whether the message carries an event (known type or :class:`AnyEvent`)."""
    return isinstance(message.payload, Event)
