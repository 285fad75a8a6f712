"""Soak: continuous traffic both ways and a stream of events, while the broker is killed
(SIGKILL) and restarted every few seconds. RSS and open file descriptors stay flat, and
every event the child generated reaches the parent exactly once, none left pending.

Runs ``--soak-seconds`` (180 s by default; see conftest.py). The figures are printed (``-s``)
and attached to the test report as properties. A short soak catches gross leaks (kilobytes
per message); a long one (``pytest tests/robustness --soak-seconds 600``) gets past the
warm-up of the bounded caches and catches small ones (~100 bytes per message).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from result import Ok, Result

from gwproactor import BrokerSettings, Communicator, Message, Proactor, ServicesInterface
from gwproactor.errors import StoreError
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    Hello,
    Reply,
    is_state,
    pair_settings,
    running,
    wait_active,
    wait_until,
)

if TYPE_CHECKING:
    from gwproactor.testing.mosquitto import Mosquitto
    from tests.support.fixtures import MosquittoFactory

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TRAFFIC_PERIOD = 0.02  # one message each way and one event per period
RESTART_EVERY = 3.0  # seconds of traffic between broker kills
# Bounded caches fill during the first minutes (pydantic-core's JSON string cache of 16384
# strings, SQLite's page caches, the dedup windows): about 5 MB in total, flat after ~4 min
# at this load (measured over 10 min: 55.3 MB -> 60.3 MB at 7 min -> 60.4 MB at 10 min).
RSS_MARGIN_KB = 10 * 1024
FD_MARGIN = 2
DEDUP_WINDOW = 128


class Tally(Communicator):
    """Counts what it gets without keeping it (the soak must not grow because of the test):
    a bytearray marks each ``n`` seen, so duplicates are counted too. Optionally answers a
    Hello with a Reply."""

    def __init__(self, name: str, services: ServicesInterface, reply_link: str = "") -> None:
        super().__init__(name, services)
        self.reply_link = reply_link
        self.seen = bytearray()
        self.count = 0
        self.duplicates = 0
        self.out_of_order = 0  # arrived after a higher n (a re-upload overtaken by new ones)
        self._highest = -1

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        n = message.payload.n
        if n >= len(self.seen):
            self.seen.extend(bytes(n + 1024 - len(self.seen)))
        if self.seen[n]:
            self.duplicates += 1
        self.seen[n] = 1
        self.count += 1
        if n < self._highest:
            self.out_of_order += 1
        self._highest = max(self._highest, n)
        if self.reply_link and isinstance(message.payload, Hello):
            # Best effort, like all non-event messages: the link may be down right now.
            self.services.send_to_peer(self.reply_link, Reply(n=n), actor="collector")
        return Ok(None)

    def missing(self, count: int) -> list[int]:
        return [n for n in range(count) if n >= len(self.seen) or not self.seen[n]]


@dataclass
class Traffic:
    """The load: Hello from parent to child (answered by a Reply), a Counted event from the
    child, every TRAFFIC_PERIOD seconds, whatever the links' states."""

    parent: Proactor
    child: Proactor
    hellos_sent: int = 0
    events_generated: int = 0
    events_committed: int = 0
    events_failed: list[str] = field(default_factory=list)

    def _committed(self, future: asyncio.Future[Result[str, StoreError]]) -> None:
        result = future.result()
        if isinstance(result, Ok):
            self.events_committed += 1
        else:
            self.events_failed.append(str(result.err_value))

    async def run(self) -> None:
        while True:
            hello = Hello(n=self.hellos_sent)
            if self.parent.send_to_peer("child", hello, actor="responder").is_ok():
                self.hellos_sent += 1
            future = self.child.generate_event(Counted(n=self.events_generated))
            future.add_done_callback(self._committed)
            self.events_generated += 1
            await asyncio.sleep(TRAFFIC_PERIOD)


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _measure() -> tuple[int, int]:
    gc.collect()
    return _rss_kb(), _fds()


async def _restart_broker(broker: Mosquitto, parent: Proactor, child: Proactor) -> None:
    """SIGKILL the broker; once both links have noticed, start it again on the same port and
    wait until both links are active."""
    with parent.listener("link.state") as p_states, child.listener("link.state") as c_states:
        await broker.akill()
        await p_states.wait_for(is_state("connecting"), TIMEOUT)
        await c_states.wait_for(is_state("connecting"), TIMEOUT)
        await broker.astart()
        await p_states.wait_for(is_state("active"), TIMEOUT)
        await c_states.wait_for(is_state("active"), TIMEOUT)


async def _traffic_for(seconds: float, parent: Proactor, tally: Tally) -> None:
    """Let the traffic run ``seconds``, and check that replies are flowing."""
    before = tally.count
    with parent.listener("message.dispatched", history=1) as heard:
        await wait_until(lambda: tally.count > before, heard, TIMEOUT)
    await asyncio.sleep(seconds)  # the soak's own duration, not a synchronisation


async def test_soak_with_broker_restarts_keeps_rss_fds_flat_and_every_event(
    mosquitto_factory: MosquittoFactory,
    soak_duration: float,
    record_property: Callable[[str, object], None],
) -> None:
    broker = mosquitto_factory(log_types=("error", "warning"))
    parent_settings, child_settings = pair_settings(
        BrokerSettings(port=broker.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.3),
        # A window that the warm-up fills: a full window is the steady state, and filling
        # the default 4096 ids per link would look like growth in a short soak.
        dedup_window=DEDUP_WINDOW,
    )
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    recorder = Tally("recorder", parent)
    collector = Tally("collector", parent)
    responder = Tally("responder", child, reply_link="parent")
    parent.add_communicator(recorder)
    parent.add_communicator(collector)
    parent.route(Counted.type_name, "recorder")
    child.add_communicator(responder)
    traffic = Traffic(parent, child)
    restarts = 0
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        load = asyncio.create_task(traffic.run(), name="soak.traffic")
        try:
            # Warm-up: one full outage and recovery, so that every lazily made part (executor
            # threads, sockets, store pages) exists before the first measurement.
            await _traffic_for(1.0, parent, collector)
            await _restart_broker(broker, parent, child)
            restarts += 1
            await _traffic_for(1.0, parent, collector)
            rss_start, fds_start = _measure()
            started = time.monotonic()
            while time.monotonic() - started < soak_duration:
                await _restart_broker(broker, parent, child)
                restarts += 1
                await _traffic_for(RESTART_EVERY, parent, collector)
        finally:
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)
        soaked = time.monotonic() - started
        # Drain: every generated event reaches the parent and is acked back to the child.
        generated = traffic.events_generated
        with (
            child.listener(("event.stored", "event.acked"), history=1) as acks,
            parent.listener("message.dispatched", history=1) as heard,
        ):
            await wait_until(lambda: traffic.events_committed == generated, acks, TIMEOUT)
            await wait_until(lambda: recorder.count == generated, heard, TIMEOUT * 3)
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT * 3)
        rss_end, fds_end = _measure()
        uploader = child.events.uploader
        assert uploader is not None
        in_flight = uploader.in_flight
    figures = {
        "soak_seconds": round(soaked, 1),
        "broker_restarts": restarts,
        "rss_start_kb": rss_start,
        "rss_end_kb": rss_end,
        "rss_growth_kb": rss_end - rss_start,
        "fds_start": fds_start,
        "fds_end": fds_end,
        "events_generated": generated,
        "events_received_by_parent": recorder.count,
        "event_duplicates_to_actors": recorder.duplicates,
        "events_out_of_order": recorder.out_of_order,
        "hellos_sent": traffic.hellos_sent,
        "hellos_received": responder.count,
        "replies_received": collector.count,
    }
    for name, value in figures.items():
        record_property(name, value)
    print("\nsoak:", ", ".join(f"{k}={v}" for k, v in figures.items()))
    assert traffic.events_failed == []
    assert traffic.events_committed == generated
    assert recorder.count == generated
    assert recorder.duplicates == 0
    assert recorder.missing(generated) == []
    assert child.store.pending_count == 0
    assert in_flight == 0
    assert restarts >= 2
    assert responder.duplicates == 0
    assert 0 < collector.count <= responder.count <= traffic.hellos_sent
    assert abs(fds_end - fds_start) <= FD_MARGIN, figures
    assert rss_end - rss_start <= RSS_MARGIN_KB, figures
