"""The record classes that replaced dataclasses on the start-up path behave as the
dataclasses did: construction, ==, hash (frozen) or none (mutable), repr, immutability,
pattern matching, copy and pickle."""

from __future__ import annotations

import copy
import pickle
from collections import Counter
from dataclasses import FrozenInstanceError

import pytest

from gwproactor import CommEvent, LinkStats, MonitoredName, ProactorStats
from gwproactor.observe.history import Transition
from gwproactor.observe.stats import ActorActivity
from gwproactor.watchdog import WatchdogEntry
from gwproactor.web import RouteConfig, ServerConfig


def test_frozen_records_compare_hash_and_refuse_changes() -> None:
    a = MonitoredName("a", 1.0)
    assert a == MonitoredName("a", 1.0) == MonitoredName(name="a", timeout_seconds=1.0)
    assert a != MonitoredName("a", 2.0)
    assert a != ("a", 1.0)  # another class is never equal
    assert len({a, MonitoredName("a", 1.0), MonitoredName("b", 1.0)}) == 2
    assert repr(a) == "MonitoredName(name='a', timeout_seconds=1.0)"
    with pytest.raises(FrozenInstanceError):
        a.name = "b"
    with pytest.raises(FrozenInstanceError):
        del a.name
    with pytest.raises(AttributeError):
        a.other = 1
    assert copy.copy(a) == a == pickle.loads(pickle.dumps(a))
    match WatchdogEntry("w", 1.0, 2.0, stalled=True):
        case WatchdogEntry(name, _, silent, stalled):
            assert (name, silent, stalled) == ("w", 2.0, True)


def test_comm_event_defaults() -> None:
    event = CommEvent("link.state", "child", time=3.0)
    assert event.data == {} and event.time == 3.0
    assert CommEvent("x", "y").time > 0.0
    assert repr(Transition(1.0, "a", "b")) == "Transition(time=1.0, old='a', new='b')"
    assert pickle.loads(pickle.dumps(event)) == event


def test_mutable_records_compare_but_do_not_hash() -> None:
    server = ServerConfig("gateway", "127.0.0.1", 0)
    assert server.site_kwargs == {} and server.enabled
    assert server == ServerConfig("gateway", "127.0.0.1", 0, True, {}, {})
    server.port = 8080
    assert server.port == 8080
    with pytest.raises(TypeError):
        hash(server)
    route = RouteConfig("gateway", "GET", "/x", print, mutating=False)  # type: ignore[arg-type]
    assert copy.deepcopy(route) == route and route.kwargs == {}
    assert ActorActivity(handled=2) == ActorActivity(2) != ActorActivity()


def test_stats_construct_compare_and_take_counts_by_keyword() -> None:
    stats = LinkStats("child")
    assert stats == LinkStats("child") != LinkStats("other")
    assert stats.messages_in == Counter() and stats.raw_in == 0
    assert LinkStats("child", raw_in=3).raw_in == 3
    with pytest.raises(TypeError, match="no_such_counter"):
        LinkStats("child", no_such_counter=1)
    assert list(stats.as_dict())[:3] == ["messages_in", "messages_out", "decode_errors"]
    assert repr(stats).startswith("LinkStats(name='child', messages_in=Counter()")
    gateway = ProactorStats(dispatched=5)
    assert gateway.dispatched == 5 and gateway.link("child") == stats
    assert ProactorStats() != gateway
