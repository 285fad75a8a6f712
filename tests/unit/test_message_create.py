"""Message.create and RawMessage.create build exactly what pydantic's constructors build
(same fields, fields-set, extra and private state), in a fraction of the bytecode."""

from __future__ import annotations

import time
from typing import Any

from gwproactor.wire.codec import JsonCodec, MessageRegistry
from gwproactor.wire.message import Header, Message, RawMessage
from tests.helpers import Hello, count_opcodes

_STATE = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")


def _same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    for attr in _STATE:
        assert getattr(a, attr) == getattr(b, attr), attr
    assert a == b
    assert a.model_dump_json() == b.model_dump_json()


def _by_pydantic(payload: Any, **header: Any) -> Message[Any]:
    return Message[Any].model_construct(header=Header.model_construct(**header), payload=payload)


def test_message_create_is_what_model_construct_makes() -> None:
    payload = Hello(n=3, text="x")
    fast = Message.create("a", "b", payload, ack_required=True, actor="pump", message_id="m-1")
    slow = _by_pydantic(
        payload,
        src="a",
        dst="b",
        message_type="test.hello",
        message_id="m-1",
        ack_required=True,
        actor="pump",
    )
    _same(fast, slow)
    _same(fast.header, slow.header)
    assert hash(fast.header) == hash(slow.header)
    fast.keep_payload_json(b"{}")  # private state is the instance's own
    assert fast.payload_json == b"{}"
    assert Message.create("a", "b", payload).payload_json is None
    assert (
        Message.create("a", "b", payload).message_id != Message.create("a", "b", payload).message_id
    )


def test_raw_message_create_is_what_validation_makes() -> None:
    parsed = Hello(n=1)
    for value in (None, parsed):
        before = time.monotonic()
        fast = RawMessage.create("child", "dev/1", b"\x00x", value)
        assert before <= fast.received_at <= time.monotonic()
        slow = RawMessage(link="child", topic="dev/1", payload=b"\x00x", parsed=value)
        # The same state but for the clock reading.
        object.__setattr__(slow, "__dict__", {**slow.__dict__, "received_at": fast.received_at})
        _same(fast, slow)


def test_message_create_is_a_fraction_of_model_construct() -> None:
    payload = Hello(n=1)
    header = {"src": "a", "dst": "b", "message_type": "test.hello", "message_id": "m"}
    Message.create("a", "b", payload)
    _by_pydantic(payload, **header)
    fast = count_opcodes(lambda: Message.create("a", "b", payload))
    slow = count_opcodes(lambda: _by_pydantic(payload, **header))
    assert fast <= 0.2 * slow, (fast, slow)


def test_decoding_runs_no_pydantic_post_init() -> None:
    """Message declares no private attribute (the kept payload JSON lives in pydantic's
    private slot without one): a declared one made pydantic run a post-init hook on every
    validated message, 225 opcodes per decode instead of 99 (issue 15)."""
    codec = JsonCodec(MessageRegistry(Hello))
    message = Message.create("a", "b", Hello(n=1, text="x"))
    topic, payload = codec.topic(message), codec.encode(message)
    decoded = codec.decode(topic, payload).unwrap()
    assert decoded == message
    assert decoded.payload_json is None
    assert Message[Hello].__pydantic_post_init__ is None
    assert count_opcodes(lambda: codec.decode(topic, payload)) <= 150
