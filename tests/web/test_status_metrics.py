"""/status and /metrics on real gateways: they follow the links and the counters."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gwproactor import LinkState, Proactor
from gwproactor.mqtt import MemoryBroker
from gwproactor.web import METRIC_NAMES, render_metrics
from tests.helpers import TIMEOUT, Counted, Hello, Recorder, running, wait_active, wait_until
from tests.web._support import get_json, get_text, memory_pair

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _parse(text: str) -> tuple[dict[str, str], Samples]:
    """(family name -> type, (sample name, sorted labels) -> value) via prometheus_client."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return types, samples


async def test_status_matches_link_states_as_they_change(http: aiohttp.ClientSession) -> None:
    broker = MemoryBroker()
    parent, child = memory_pair(broker)
    async with running(child):
        status, body = await get_json(http, child, "/status")
        assert status == 200
        assert body["gateway"] == "child"
        assert body["ready"] is False
        assert body["links"]["parent"]["state"] == child.link_state("parent")
        assert body["links"]["parent"]["active"] is False
        assert body["links"]["parent"]["last_heard"] is None
        async with running(parent):
            await wait_active(child, "parent")
            _, body = await get_json(http, child, "/status")
            link = body["links"]["parent"]
            assert (link["state"], link["active"], body["ready"]) == ("active", True, True)
            assert link["role"] == "upstream"
            assert link["peer"] == "parent"
            assert link["last_heard"] is not None
            assert body["receive_queue"]["max"] == child.settings.receive_queue_max
            assert body["watchdog"]["satisfied"] is True


async def _scrape(
    http: aiohttp.ClientSession, proactor: Proactor
) -> tuple[dict[str, str], Samples]:
    status, content_type, text = await get_text(http, proactor, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    for name in {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}:
        assert f"# HELP {name} " in text
    return _parse(text)


async def test_metrics_parse_and_match_status(http: aiohttp.ClientSession) -> None:
    broker = MemoryBroker()
    parent, child = memory_pair(broker)
    async with running(parent, child):
        await wait_active(child, "parent")
        with child.listener("event.acked") as acks:
            for n in range(5):
                await child.generate_event(Counted(n=n))
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
        assert child.send_to_peer("parent", Hello(n=1)).is_ok()
        types, samples = await _scrape(http, child)
        status: dict[str, Any] = child.status()
    assert set(types) <= {name.removesuffix("_total") for name in METRIC_NAMES}
    assert types["gwproactor_link_messages_out"] == "counter"
    assert types["gwproactor_link_state"] == "gauge"
    link = status["links"]["parent"]
    for state in LinkState:
        key = ("gwproactor_link_state", (("link", "parent"), ("state", state.value)))
        assert samples[key] == (1.0 if state.value == "active" else 0.0)
    for message_type, count in link["stats"]["messages_out"].items():
        key = ("gwproactor_link_messages_out_total", (("link", "parent"), ("type", message_type)))
        assert samples[key] == count
    assert (
        samples[
            ("gwproactor_link_messages_out_total", (("link", "parent"), ("type", "test.counted")))
        ]
        == 5
    )
    assert (
        samples[
            ("gwproactor_link_messages_out_total", (("link", "parent"), ("type", "test.hello")))
        ]
        == 1
    )
    assert samples[("gwproactor_events_generated_total", ())] == 5
    assert samples[("gwproactor_store_pending_events", ())] == 0
    assert samples[("gwproactor_ready", ())] == 1
    assert samples[("gwproactor_watchdog_satisfied", ())] == 1
    assert samples[("gwproactor_watchdog_stalled", (("name", "loop"),))] == 0
    assert samples[("gwproactor_receive_queue_max", ())] == status["receive_queue"]["max"]
    assert samples[("gwproactor_link_reconnects_total", (("link", "parent"),))] == 0
    assert samples[("gwproactor_uploader_in_flight", (("link", "parent"),))] == 0
    # The in-memory transport has no in-flight limit: the configured window.
    assert samples[("gwproactor_uploader_window", (("link", "parent"),))] == 200
    assert samples[("gwproactor_info", (("gateway", "child"), ("state", "running")))] == 1


async def test_metrics_while_disconnected_show_backlog_and_state(
    http: aiohttp.ClientSession,
) -> None:
    broker = MemoryBroker()
    _, child = memory_pair(broker)
    async with running(child):
        for n in range(3):
            await child.generate_event(Counted(n=n))
        _, samples = await _scrape(http, child)
        status = child.status()
    current = status["links"]["parent"]["state"]
    assert current != "active"
    states = {
        dict(labels)["state"]: value
        for (name, labels), value in samples.items()
        if name == "gwproactor_link_state"
    }
    assert states == {s.value: float(s.value == current) for s in LinkState}
    assert samples[("gwproactor_ready", ())] == 0
    assert samples[("gwproactor_store_pending_events", ())] == 3
    assert samples[("gwproactor_store_pending_bytes", ())] == status["store"]["pending_bytes"] > 0


async def test_metrics_escape_label_values() -> None:
    _, child = memory_pair(MemoryBroker())
    async with running(child):
        status = child.status()
    odd = 'bad "json"\nline two \\ end'
    status["links"]["parent"]["stats"]["decode_errors"] = {odd: 2}
    _, samples = _parse(render_metrics(status))
    key = ("gwproactor_link_decode_errors_total", (("link", "parent"), ("reason", odd)))
    assert samples[key] == 2


async def test_every_family_is_present_from_start_and_counters_are_zero(
    http: aiohttp.ClientSession,
) -> None:
    """Alerting needs every series before its first increment (``increase()`` of a series
    that does not exist yet is nothing, not 0)."""
    _, child = memory_pair(MemoryBroker())
    child.add_communicator(Recorder("rx", child))
    async with running(child):
        types, samples = await _scrape(http, child)
        status = child.status()
    families = {name for name, _ in samples} | {f"{n}_total" for n in types}
    missing = [name for name in METRIC_NAMES if name not in families]
    assert missing == []
    counters = {key: v for key, v in samples.items() if key[0].endswith("_total")}
    assert counters, "no counter sampled"
    link = (("link", "parent"),)
    nonzero = {key for key, v in counters.items() if v != 0}
    # The link's pings are the only traffic of a gateway whose peer is not there (and on a
    # slow machine the first one may already have timed out).
    ping = ("gwproactor_link_messages_out_total", (*link, ("type", "gw.ping")))
    timeouts = ("gwproactor_link_ack_timeouts_total", link)
    assert nonzero <= {ping, timeouts}
    for counter in ("connect_failures", "reconnects", "publish_failures"):
        assert samples[(f"gwproactor_link_{counter}_total", link)] == 0
    for reason in ("unknown_actor", "no_route", "unknown_destination"):
        assert samples[("gwproactor_unroutable_total", (("reason", reason),))] == 0
    for counter in ("events_dropped", "events_refused", "write_errors", "dead_letters"):
        assert samples[(f"gwproactor_store_{counter}_total", ())] == 0
    assert samples[("gwproactor_watchdog_stalls_total", ())] == 0
    assert samples[("gwproactor_problems_total", (("kind", "handler"),))] == 0
    assert samples[("gwproactor_link_decode_errors_total", (*link, ("reason", "json")))] == 0
    assert samples[("gwproactor_link_messages_in_total", (*link, ("type", "other")))] == 0
    assert ("gwproactor_loop_lag_seconds", ()) in samples
    # Never heard: the time since start, so "no data from the peer" alerts fire.
    assert samples[("gwproactor_link_seconds_since_heard", link)] >= 0
    version = status["version"]
    assert samples[("gwproactor_build_info", (("gateway", "child"), ("version", version)))] == 1


def test_counters_follow_the_snapshot() -> None:
    """The dead-letter hook, problem kinds and watchdog stalls, from a snapshot."""
    status: dict[str, Any] = {
        "gateway": "g",
        "version": "1.2.3",
        "state": "running",
        "ready": False,
        "uptime_seconds": 3.0,
        "links": {},
        "receive_queue": {"depth": 0, "max": 10, "paused": False, "high_water": 0},
        "store": {
            "pending_count": 0,
            "pending_bytes": 0,
            "archive_count": 0,
            "stats": {"dropped": 4, "refused": 5, "write_errors": 6, "dead_lettered": 7},
        },
        "stats": {
            "events_generated": 0,
            "events_rejected": 8,
            "events_received": 0,
            "events_duplicate": 0,
            "dispatched": 0,
            "problems_reported": 9,
            "problems_by_kind": {"store": 2, "stall": 1},
            "unroutable": {"no_route": 3},
            "handler_errors": {"relay": 1},
        },
        "actors": {"relay": {}, "thermo": {}},
        "uploader": None,
        "watchdog": {"satisfied": False, "loop_lag_seconds": 0.25, "stalls": 2, "names": {}},
    }
    _, samples = _parse(render_metrics(status))
    assert samples[("gwproactor_store_dead_letters_total", ())] == 7
    assert samples[("gwproactor_events_rejected_total", ())] == 8
    assert samples[("gwproactor_store_events_dropped_total", ())] == 4
    assert samples[("gwproactor_problems_total", (("kind", "store"),))] == 2
    assert samples[("gwproactor_problems_total", (("kind", "handler"),))] == 0
    assert samples[("gwproactor_unroutable_total", (("reason", "no_route"),))] == 3
    assert samples[("gwproactor_handler_errors_total", (("communicator", "thermo"),))] == 0
    assert samples[("gwproactor_watchdog_stalls_total", ())] == 2
    assert samples[("gwproactor_loop_lag_seconds", ())] == 0.25
