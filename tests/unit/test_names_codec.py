"""Names, topics and the JSON codec."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from result import Err, Ok

from gwproactor.errors import DecodeError, InvalidNameError
from gwproactor.wire.codec import JsonCodec, MessageRegistry
from gwproactor.wire.message import AnyEvent, Event, Message, Payload
from gwproactor.wire.names import parse_topic, topic_for, validate_name


class Reading(Payload):
    type_name: ClassVar[str] = "sim.reading"
    channel: str
    value: float


class Moved(Event):
    type_name: ClassVar[str] = "sim.relay.moved"
    closed: bool


@pytest.fixture
def codec() -> JsonCodec:
    return JsonCodec(MessageRegistry(Reading, Moved), max_payload_bytes=2048)


@pytest.mark.parametrize(
    "name", ["a", "child", "d1.isone.ver.keene", "A_b-9", "x" * 128, "gw.relay.state"]
)
def test_allowed_names_round_trip_through_topics(name: str) -> None:
    topic = topic_for(name, "parent-1", name)
    assert parse_topic(topic) == (name, "parent-1", name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("a/b", "'/'"),
        ("a+b", "'+'"),
        ("a#", "'#'"),
        ("$sys", "'$'"),
        ("é", "'é'"),
        ("a b", "' '"),
        ("a..b", "'..'"),
        ("a.", "must not end"),
        (".a", "must start"),
        ("x" * 129, "129 characters"),
    ],
)
def test_disallowed_names_are_rejected_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid") as info:
        validate_name(name)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    "topic",
    ["gw/a/to/b", "gw/a/to/b/c/d", "xx/a/to/b/c", "gw/a/from/b/c", "gw/a b/to/b/c", "gw//to/b/c"],
)
def test_foreign_topics_do_not_parse(topic: str) -> None:
    assert parse_topic(topic) is None


def test_encode_decode_round_trip(codec: JsonCodec) -> None:
    message = Message.create("child", "parent", Reading(channel="t1", value=21.5), actor="rx")
    decoded = codec.decode(codec.topic(message), codec.encode(message))
    assert isinstance(decoded, Ok)
    assert decoded.ok_value.payload == Reading(channel="t1", value=21.5)
    assert decoded.ok_value.header == message.header


def _error(codec: JsonCodec, topic: str, payload: bytes) -> DecodeError:
    result = codec.decode(topic, payload)
    assert isinstance(result, Err)
    return result.err_value


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("gw/a/to/b/sim.reading", b"{not json", "json"),
        ("gw/a/to/b/sim.reading", b"\xff\xfe", "json"),
        (
            "gw/a/to/b/sim.reading",
            b'{"header":{"src":"a","dst":"b","message_type":"sim.reading","message_id":"1"},'
            b'"payload":{"channel":"t"}}',
            "payload",
        ),
        ("gw/a/to/b/no.such.type", b'{"header":{},"payload":{}}', "unknown_type"),
        ("not/a/gateway/topic", b"{}", "topic"),
        (
            "gw/a/to/b/sim.reading",
            b'{"header":{"src":"x","dst":"b","message_type":"sim.reading","message_id":"1"},'
            b'"payload":{"channel":"t","value":1}}',
            "mismatch",
        ),
        ("gw/a/to/b/sim.reading", b"x" * 4096, "too_large"),
    ],
)
def test_bad_input_is_a_decode_error_with_a_reason(
    codec: JsonCodec, topic: str, payload: bytes, reason: str
) -> None:
    assert _error(codec, topic, payload).reason == reason


def test_unknown_event_type_decodes_as_any_event_and_keeps_fields(codec: JsonCodec) -> None:
    payload = (
        b'{"header":{"src":"a","dst":"b","message_type":"new.kind","message_id":"9",'
        b'"ack_required":true},"payload":{"src":"a","time_ns":5,"extra":[1,2]}}'
    )
    decoded = codec.decode("gw/a/to/b/new.kind", payload)
    assert isinstance(decoded, Ok)
    event: Any = decoded.ok_value.payload
    assert isinstance(event, AnyEvent)
    assert event.model_dump() == {"src": "a", "time_ns": 5, "extra": [1, 2]}


def test_event_subclass_is_encoded_with_all_its_fields(codec: JsonCodec) -> None:
    message = Message.create("a", "b", Moved(src="a", time_ns=7, closed=True))
    assert b'"closed":true' in codec.encode(message)


def test_registry_refuses_a_second_class_for_a_name() -> None:
    class Other(Payload):
        type_name: ClassVar[str] = "sim.reading"

    with pytest.raises(ValueError, match="registered twice"):
        MessageRegistry(Reading, Other)


def test_payload_type_name_must_be_allowed() -> None:
    with pytest.raises(InvalidNameError):

        class Bad(Payload):
            type_name: ClassVar[str] = "bad/name"


@pytest.mark.parametrize(
    "time_ns", [2**63, -(2**63) - 1, 10**400], ids=["2^63", "-2^63-1", "1e400"]
)
def test_an_event_time_the_store_cannot_hold_is_a_payload_error(
    codec: JsonCodec, time_ns: int
) -> None:
    """sqlite's INTEGER is 64-bit signed: such an event from a peer would fail the store's
    whole group commit (every other event in it with it) with an OverflowError."""
    payload = (
        b'{"header":{"src":"a","dst":"b","message_type":"sim.relay.moved","message_id":"9",'
        b'"ack_required":true},"payload":{"src":"a","time_ns":%d,"closed":true}}' % time_ns
    )
    assert _error(codec, "gw/a/to/b/sim.relay.moved", payload).reason == "payload"
    assert _error(codec, "gw/a/to/b/new.kind", payload.replace(b"sim.relay.moved", b"new.kind"))
    with pytest.raises(ValueError, match="time_ns"):
        Moved(src="a", time_ns=time_ns, closed=True)
