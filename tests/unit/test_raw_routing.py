"""Raw-topic routing: the filter tree agrees with paho, and the cost per message does not
grow with the number of filters (counted in Python bytecode instructions, not time)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from gwproactor.observe.listeners import ListenerHub
from gwproactor.observe.stats import LinkStats
from gwproactor.routing import RawRouter
from gwproactor.routing._raw import TopicTree
from gwproactor.wire.message import Message
from tests.helpers import count_opcodes

_LEVEL = st.sampled_from(["a", "b", "c", "$SYS", "", "dev1"])
_FILTER_LEVEL = st.sampled_from(["a", "b", "c", "$SYS", "", "dev1", "+"])


@st.composite
def _filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(_FILTER_LEVEL, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


_TOPICS = st.lists(_LEVEL, min_size=1, max_size=5).map("/".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_filters(), min_size=1, max_size=8, unique=True), _TOPICS)
def test_tree_matches_like_paho(filters: list[str], topic: str) -> None:
    tree = TopicTree()
    for topic_filter in filters:
        tree.add(topic_filter)
    expected = {f for f in filters if topic_matches_sub(f, topic)}
    assert set(tree.match(topic)) == expected
    # Removing half of them leaves exactly the other half (branches pruned, shared kept).
    for topic_filter in filters[::2]:
        tree.remove(topic_filter)
    assert set(tree.match(topic)) == {f for f in filters[1::2] if f in expected}


class _Link:
    """The part of a Link the raw router uses."""

    def __init__(self) -> None:
        self.name = "child"
        self.stats = LinkStats("child")
        self.subscribed: set[str] = set()  # a broker's subscriptions: a set

    def subscribe_raw(self, topic_filter: str, qos: Any = None) -> None:
        self.subscribed.add(topic_filter)

    def unsubscribe_raw(self, topic_filter: str) -> None:
        self.subscribed.discard(topic_filter)


def _router() -> tuple[RawRouter, _Link, list[Message[Any]]]:
    out: list[Message[Any]] = []
    router = RawRouter({}, put=out.append, hub=ListenerHub(), report_problem=print)
    return router, _Link(), out


def test_delivery_order_and_unsubscribe() -> None:
    router, link, out = _router()
    link_: Any = link
    router.subscribe(link_, "dev/+/power", "b", None, None)
    router.subscribe(link_, "dev/#", "a", None, None)
    router.subscribe(link_, "dev/1/power", "c", None, None)
    router.received(link_, "dev/1/power", b"1")
    assert [m.header.dst for m in out] == ["b", "a", "c"]  # in the order routes were made
    router.subscribe(link_, "dev/+/power", "b", None, None)  # again: moves to the end
    router.received(link_, "dev/1/power", b"2")
    assert [m.header.dst for m in out[3:]] == ["a", "c", "b"]
    router.subscribe(link_, "dev/#", "c", None, None)  # a second communicator, same filter
    router.unsubscribe(link_, "dev/#", "a")
    assert "dev/#" in link.subscribed  # "c" still uses it
    router.unsubscribe(link_, "dev/#", "c")
    assert "dev/#" not in link.subscribed
    router.received(link_, "dev/1/power", b"3")  # the cache was invalidated
    assert [(m.header.dst, m.payload.payload) for m in out[6:]] == [("c", b"3"), ("b", b"3")]
    router.received(link_, "other", b"4")
    assert len(out) == 8


def _opcodes_per_message(filters: int, distinct_topics: bool) -> float:
    router, link, out = _router()
    link_: Any = link
    for i in range(filters):
        router.subscribe(link_, f"site/dev{i}/+", f"actor{i % 7}", None, None)
    topics = [f"site/dev{(i * 7919) % filters}/power{i}" for i in range(200)]
    if not distinct_topics:
        topics = [topics[0]] * len(topics)
    router.received(link_, "site/warm/up", b"")  # first-call costs out of the count

    def run() -> None:
        for topic in topics:
            router.received(link_, topic, b"42")

    count = count_opcodes(run)
    assert len(out) == len(topics)
    return count / len(topics)


def test_cost_per_message_does_not_grow_with_filters() -> None:
    for distinct in (False, True):  # cache hits; every topic new (cache misses)
        one = _opcodes_per_message(1, distinct)
        thousand = _opcodes_per_message(1_000, distinct)
        assert thousand <= 1.2 * one, (distinct, one, thousand)
