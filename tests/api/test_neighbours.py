"""Ideas next to the reference that the product adopted (type patterns, listeners, raw
topics), used the way their models document them."""

from __future__ import annotations

import time

import pytest

from gwproactor import (
    ActorSettings,
    ConfigError,
    EventListener,
    InvalidNameError,
    Proactor,
    ProactorSettings,
    RawMessage,
    StateError,
)
from tests.api.checks import Collector, Env, InitActor, dispatched
from tests.helpers import REGISTRY, Counted, EventRecorder, Hello, wait_active

TIMEOUT = 10.0


@pytest.fixture
async def pair(env: Env) -> tuple[Proactor, Proactor]:
    return await env.pair()


async def test_route_by_type_pattern_messages_and_events(
    pair: tuple[Proactor, Proactor],
) -> None:
    parent, child = pair
    by_pattern = Collector("by-pattern", child)
    exact = Collector("exact", child)
    child.add_communicator(by_pattern)
    child.add_communicator(exact)
    child.route("test.*", "by-pattern")
    child.route("test.reply", "exact")  # an exact route wins over a pattern
    assert child.routes.get("test.hello") == "by-pattern"
    assert child.routes.get("test.reply") == "exact"
    assert child.routes.get("other.hello") is None
    assert parent.send_to_peer("child", Hello(n=1)).is_ok()
    await dispatched(child, lambda: bool(by_pattern.received))
    assert by_pattern.received[0].payload == Hello(n=1)
    events = EventRecorder("events", parent)
    parent.add_communicator(events)
    parent.route("test.?", "events")  # one level: test.counted
    assert (await child.generate_event(Counted(n=5))).is_ok()
    await dispatched(parent, lambda: bool(events.events))
    assert events.events[0].n == 5


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("test.h*", ConfigError),
        ("*.hello", ConfigError),
        ("a..b", InvalidNameError),
        ("", InvalidNameError),
        ("gw/x", InvalidNameError),
        ("a.+", InvalidNameError),
    ],
)
def test_a_route_that_could_never_match_is_refused(key: str, error: type[Exception]) -> None:
    proactor = Proactor(ProactorSettings(name="routes"))
    with pytest.raises(error):
        proactor.route(key, "somebody")
    assert key not in list(proactor.routes)


async def test_actor_config_handles_a_pattern(env: Env) -> None:
    parent_settings, child_settings = env.pair_settings()
    actor = ActorSettings(cls="tests.api.checks:InitActor", handles=["test.*"])
    child = Proactor(child_settings.model_copy(update={"actors": {"site": actor}}), REGISTRY)
    parent = Proactor(parent_settings, REGISTRY)
    await env.start(parent, child)
    loaded = child.get_communicator_as_type("site", InitActor)
    assert loaded is not None and loaded.initialised
    await wait_active(parent, "child")
    await wait_active(child, "parent")
    assert parent.send_to_peer("child", Hello(n=2)).is_ok()
    await dispatched(child, lambda: bool(loaded.seen))
    assert loaded.seen[0].payload == Hello(n=2)
    with pytest.raises(ValueError, match="mixes a wildcard"):
        ActorSettings(cls="x:Y", handles=["test.h*"])


def test_listener_clear_returns_what_it_dropped_and_history_is_read_only() -> None:
    proactor = Proactor(ProactorSettings(name="hub"))
    with proactor.listener("ping") as heard:
        proactor.hub.emit("ping", "a")
        proactor.hub.emit("ping", "b")
        dropped = heard.clear()
        assert [e.source for e in dropped] == ["a", "b"]
        assert heard.empty() and heard.clear() == []
        assert [e.source for e in heard.history] == ["a", "b"]
        assert isinstance(heard.history, tuple)
        with pytest.raises(AttributeError):
            heard.history = ()  # type: ignore[misc]


def test_leaving_with_clears_the_queue_and_keeps_the_history() -> None:
    proactor = Proactor(ProactorSettings(name="hub"))
    with proactor.listener("ping") as heard:
        proactor.hub.emit("ping", "a")
        assert not heard.empty()
    assert heard.empty()
    assert [e.source for e in heard.history] == ["a"]
    proactor.hub.emit("ping", "after")
    assert heard.empty()


def test_a_listener_without_a_hub_is_an_error_in_with() -> None:
    orphan = EventListener("ping")
    with pytest.raises(StateError, match="no hub"), orphan:
        raise AssertionError("entered")


def test_listen_registers_several_listeners_at_once() -> None:
    proactor = Proactor(ProactorSettings(name="hub"))
    pings, pongs = EventListener("ping"), EventListener("pong")
    with proactor.listen(pings, pongs) as both:
        assert both == (pings, pongs)
        proactor.hub.emit("ping", "a")
        proactor.hub.emit("pong", "b")
        assert [e.source for e in pings.history] == ["a"]
        assert [e.source for e in pongs.history] == ["b"]
        assert not pings.empty()
    assert pings.empty() and pongs.empty()
    proactor.hub.emit("ping", "gone")
    assert len(pings.history) == 1


async def test_raw_messages_carry_their_receive_time(env: Env) -> None:
    collectors: list[Collector] = []

    def subscribe(parent: Proactor, child: Proactor) -> None:
        collectors.append(Collector("raw", child))
        child.add_communicator(collectors[0])
        child.subscribe_raw("parent", "devices/+/t", "raw")  # acked before the link is active

    parent, child = await env.pair(subscribe)
    before = time.monotonic()
    assert parent.publish_raw("child", "devices/a/t", b"21.5").is_ok()
    await dispatched(child, lambda: bool(collectors[0].received))
    raw = collectors[0].received[0].payload
    assert isinstance(raw, RawMessage) and raw.payload == b"21.5"
    assert before <= raw.received_at <= time.monotonic()
