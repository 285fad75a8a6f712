"""The fault matrix: a child gateway uploading events to its parent through a fault proxy.

Each test applies one fault while the child generates events, then checks the three
things that matter: the child's upstream link went through the expected states (and
only those), the parent's actor got every accepted event exactly once and in generation
order (0 lost, 0 duplicates delivered), and both gateways are still running with the
child's store drained.

The other rows of the matrix live where their machinery is: broker kill -9 and restart in
``tests/integration/test_events_outage.py``, gateway SIGKILL during generation and during
re-upload in ``tests/integration/test_events_crash.py``, a full store (byte bound) in
``tests/integration/test_store_full.py``, the soak in ``test_soak.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from result import Err, Ok, Result

from gwproactor import BrokerSettings, Proactor, StoreError
from gwproactor.config import MqttProtocol
from gwproactor.errors import StoreFullError
from gwproactor.observe.listeners import EventListener
from gwproactor.store import StoreSettings
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
    Counted,
    EventRecorder,
    is_state,
    pair_settings,
    record_events,
    running,
    wait_active,
    wait_until,
)

if TYPE_CHECKING:
    from tests.support.proxy import FaultProxy, FaultProxyFactory

pytestmark = pytest.mark.broker

log = logging.getLogger(__name__)

TIMEOUT = 20.0
LINK = "parent"  # the child's upstream link


@dataclass
class Matrix:
    """Parent and child, the parent's recording actor, and what the child generated."""

    parent: Proactor
    child: Proactor
    recorder: EventRecorder
    results: list[Result[str, StoreError]] = field(default_factory=list)
    generated: int = 0

    async def generate(self, count: int, time_ns: int | None = None) -> None:
        first = self.generated
        self.generated += count
        self.results += await asyncio.gather(
            *(
                self.child.generate_event(
                    Counted(n=n) if time_ns is None else Counted(n=n, time_ns=time_ns + n)
                )
                for n in range(first, first + count)
            )
        )

    @property
    def accepted(self) -> list[int]:
        return [n for n, r in enumerate(self.results) if isinstance(r, Ok)]

    async def drained(self, timeout: float = TIMEOUT) -> None:
        """Wait until the parent's actor has every accepted event and the child's store
        holds none."""
        await wait_active(self.child, LINK, timeout)
        want = len(self.accepted)
        with self.parent.listener("message.dispatched") as dispatched:
            await wait_until(lambda: len(self.recorder.events) >= want, dispatched, timeout)
        with self.child.listener("event.acked") as acked:
            await wait_until(lambda: self.child.store.pending_count == 0, acked, timeout)

    def check_delivery(self, fault: str) -> None:
        """0 lost, 0 duplicates delivered, generation order; both gateways running."""
        received = [e.n for e in self.recorder.events]
        lost = len(set(self.accepted) - set(received))
        duplicates = len(received) - len(set(received))
        log.info(
            "fault %s: %d generated, %d accepted, %d delivered to the actor, %d lost, "
            "%d duplicates delivered, %d duplicates removed by the parent, %d reconnects",
            fault,
            self.generated,
            len(self.accepted),
            len(received),
            lost,
            duplicates,
            self.parent.stats.events_duplicate,
            self.child.stats.link(LINK).reconnects,
        )
        assert (lost, duplicates) == (0, 0)
        assert received == self.accepted
        assert self.child.store.pending_count == 0
        assert (self.parent.state, self.child.state) == ("running", "running")


def transitions(states: EventListener) -> list[tuple[str, str]]:
    return [(e.data["old"], e.data["new"]) for e in states.history if e.source == LINK]


def assert_reconnected_once(seq: list[tuple[str, str]], *, dropped_from: str = "active") -> None:
    """The connection dropped once (from ``dropped_from``; from active, or first
    active → awaiting_peer when the acks stopped before it dropped), then one reconnect:
    connected, subscriptions and peer in either order, active again."""
    before = [("active", dropped_from)] if dropped_from != "active" else []
    reconnect = [(dropped_from, "connecting"), ("connecting", "awaiting_setup_and_peer")]
    assert seq[: len(before) + 2] == before + reconnect, seq
    middle = seq[-1][0]
    assert middle in ("awaiting_peer", "awaiting_setup"), seq
    assert seq[len(before) + 2 :] == [("awaiting_setup_and_peer", middle), (middle, "active")], seq


@contextlib.asynccontextmanager
async def matrix(
    mosquitto: Mosquitto,
    proxy: FaultProxy,
    *,
    ack_timeout_seconds: float = 5.0,
    keepalive_seconds: int = 60,
    store: StoreSettings | None = None,
    start_parent: bool = True,
    protocol: MqttProtocol = "3.1.1",
    qos: int = 1,
) -> AsyncIterator[Matrix]:
    """The parent on the broker directly, the child through ``proxy``; both active."""

    def broker(port: int) -> BrokerSettings:
        return BrokerSettings(
            port=port,
            protocol=protocol,
            reconnect_min_seconds=0.05,
            reconnect_max_seconds=0.5,
            keepalive_seconds=keepalive_seconds,
            misc_interval_seconds=0.25,
        )

    parent_settings, _ = pair_settings(
        broker(mosquitto.port), ack_timeout_seconds=ack_timeout_seconds, qos=qos
    )
    _, child_settings = pair_settings(
        broker(proxy.port), ack_timeout_seconds=ack_timeout_seconds, qos=qos
    )
    if store is not None:
        child_settings = child_settings.model_copy(update={"store": store})
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    recorder = record_events(parent)
    m = Matrix(parent, child, recorder)
    async with running(child):
        if not start_parent:
            yield m
            return
        async with running(parent):
            await wait_active(parent, "child")
            await wait_active(child, LINK)
            yield m
            await proxy.stop()  # first: a stalled connection must not hold up the stops


@pytest.fixture
async def proxy(mosquitto: Mosquitto, fault_proxy_factory: FaultProxyFactory) -> FaultProxy:
    return await fault_proxy_factory((mosquitto.host, mosquitto.port))


# -- the network ------------------------------------------------------------------------------


async def test_cut_connection(mosquitto: Mosquitto, proxy: FaultProxy) -> None:
    """TCP reset in the middle of a burst: one reconnect, the backlog re-sent in order."""
    async with matrix(mosquitto, proxy) as m:
        with m.child.listener("link.state") as states:
            await m.generate(300)
            proxy.cut()
            await m.generate(300)
            await states.wait_for(is_state("connecting", LINK), TIMEOUT)
            await m.generate(300)
            await m.drained()
        assert_reconnected_once(transitions(states))
        m.check_delivery("cut")
        assert m.child.stats.link(LINK).reconnects >= 1


async def test_half_open_connection(mosquitto: Mosquitto, proxy: FaultProxy) -> None:
    """Both directions stalled, nothing closed: the acks stop (awaiting_peer after the ack
    timeout), then the MQTT keepalive declares the connection dead and the link reconnects
    once the path is back."""
    async with matrix(mosquitto, proxy, ack_timeout_seconds=1.0, keepalive_seconds=5) as m:
        await m.generate(100)
        await m.drained()
        with m.child.listener("link.state") as states:
            proxy.stall()
            stalled_at = time.monotonic()
            await m.generate(200)
            await states.wait_for(is_state("awaiting_peer", LINK), TIMEOUT)
            noticed = time.monotonic() - stalled_at
            await states.wait_for(is_state("connecting", LINK), 4 * 5)
            dropped = time.monotonic() - stalled_at
            proxy.stall(False)
            await m.generate(100)
            await m.drained()
        log.info(
            "half-open: awaiting_peer after %.1f s, connection dropped after %.1f s",
            noticed,
            dropped,
        )
        assert_reconnected_once(transitions(states), dropped_from="awaiting_peer")
        assert noticed < 1.0 + 2.0  # the ack timeout, not the keepalive
        m.check_delivery("half-open stall")


async def test_delay(mosquitto: Mosquitto, proxy: FaultProxy) -> None:
    """Latency below the ack timeout changes nothing; above it the link drops to
    awaiting_peer while acks are late and comes back when they arrive. The connection
    itself is never lost."""
    async with matrix(mosquitto, proxy, ack_timeout_seconds=2.0) as m:
        with m.child.listener("link.state") as states:
            proxy.delay(0.25)
            await m.generate(300)
            await m.drained()
            assert transitions(states) == []
            proxy.delay(2.5)
            await m.generate(50)
            await states.wait_for(is_state("awaiting_peer", LINK), TIMEOUT)
            proxy.delay(0)
            await m.generate(50)
            await m.drained()
        seq = transitions(states)
        assert set(seq) <= {("active", "awaiting_peer"), ("awaiting_peer", "active")}, seq
        assert seq[0] == ("active", "awaiting_peer") and seq[-1] == ("awaiting_peer", "active")
        assert m.child.stats.link(LINK).reconnects == 0
        m.check_delivery("delay")


@pytest.mark.parametrize(
    ("protocol", "qos", "delay", "count"),
    [
        ("5", 1, 0.25, 250),  # the broker's Receive Maximum (mosquitto's default: 20)
        # 3.1.1 at QoS 2: 20 (mosquitto ignores QoS 2 publishes past it). Each one holds its
        # place for two round trips and its ack comes a round trip later still than at
        # QoS 1: a shorter delay keeps the test short and the acks well within their time.
        ("3.1.1", 2, 0.15, 200),
    ],
)
async def test_slow_path_behind_the_brokers_receive_maximum(
    mosquitto: Mosquitto,
    proxy: FaultProxy,
    protocol: MqttProtocol,
    qos: int,
    delay: float,
    count: int,
) -> None:
    """The broker caps the publishes unfinished on a connection (MQTT 5: its Receive
    Maximum) and paho only queues the ones past the cap. On a slow path (0.25 s each way) a
    window of 200 events behind a cap of 20 takes 10 round trips (5 s) to leave, while each
    event's ack timer (2 s) runs from the moment the link hands it over: acks would time
    out although nothing is wrong, and the upload would thrash (before the uploader kept
    within the cap, 250 events at QoS 1: 366 to 400 ack timeouts, 416 to 450 events sent
    again, 5 trips to awaiting_peer). The uploader keeps no more events in flight than
    leave within a quarter of the ack timeout: here, the limit."""
    async with matrix(mosquitto, proxy, ack_timeout_seconds=2.0, protocol=protocol, qos=qos) as m:
        link = m.child.link(LINK)
        with m.child.listener("link.state") as states:
            proxy.delay(delay)
            started = time.monotonic()
            await m.generate(count)
            await m.drained()
            elapsed = time.monotonic() - started
            status = m.child.status()
        log.info(
            "slow path: %d events in %.1f s, %d ack timeouts, %d events re-sent, %d transitions",
            count,
            elapsed,
            m.child.stats.link(LINK).ack_timeouts,
            status["uploader"]["resent_after_reconnect"],
            len(transitions(states)),
        )
        assert transitions(states) == []
        assert m.child.stats.link(LINK).ack_timeouts == 0
        assert m.child.stats.link(LINK).reconnects == 0
        assert link.inflight_limit == 20
        uploader = status["uploader"]
        assert (uploader["window"], uploader["configured_window"]) == (20, 200)
        assert uploader["resent_after_reconnect"] == 0
        m.check_delivery(f"slow path behind the broker's limit ({protocol}, QoS {qos})")


async def test_throttle(mosquitto: Mosquitto, proxy: FaultProxy) -> None:
    """A slow path (100 kB/s each way): uploads take longer, the link stays active."""
    rate = 100_000
    async with matrix(mosquitto, proxy) as m:
        with m.child.listener("link.state") as states:
            before = proxy.stats().up.forwarded_bytes
            proxy.throttle(rate)
            started = time.monotonic()
            await m.generate(600)
            await m.drained()
            elapsed = time.monotonic() - started
            sent = proxy.stats().up.forwarded_bytes - before
        log.info("throttle: %d bytes up in %.2f s (%.0f B/s)", sent, elapsed, sent / elapsed)
        assert transitions(states) == []
        assert elapsed >= 0.5 * sent / rate  # the throttle was really in the way
        m.check_delivery("throttle")


# -- the disk ---------------------------------------------------------------------------------


async def test_disk_full(mosquitto: Mosquitto, proxy: FaultProxy) -> None:
    """The store's file cannot grow (sqlite's page limit, as a full disk): generate_event
    returns a clear error, the problem is reported, nothing accepted is lost, and the
    gateway accepts events again once uploads have freed space."""
    store = StoreSettings(max_file_bytes=96 * 1024)
    async with matrix(mosquitto, proxy, store=store, start_parent=False) as m:
        with m.child.listener("problem") as problems:
            while len(m.results) < 5000 and all(isinstance(r, Ok) for r in m.results):
                await m.generate(50)
            failures = [r.err_value for r in m.results if isinstance(r, Err)]
            assert failures, "the store never filled up"
            assert not any(isinstance(f, StoreFullError) for f in failures)
            assert all("full" in str(f) for f in failures)
            await problems.wait_for(
                lambda e: e.source.endswith("store.write_error") and "full" in e.data["details"],
                TIMEOUT,
            )
        assert m.child.store.stats.write_errors >= 1
        assert m.child.state == "running"
        accepted_while_full = len(m.accepted)
        async with running(m.parent):
            await m.drained(60)
            await m.generate(50)  # space again
            assert all(isinstance(r, Ok) for r in m.results[-50:])
            await m.drained()
            m.check_delivery("disk full")
            await proxy.stop()
    log.info("disk full: %d events accepted before the store file was full", accepted_while_full)


# -- the clock --------------------------------------------------------------------------------


class SteppedClock:
    """``time.time``/``time.time_ns`` with an offset the test steps, as NTP or an operator
    would step the wall clock. The monotonic clock (timers, the event loop) is untouched,
    as it is by a real step."""

    def __init__(self) -> None:
        self.offset_ns = 0
        self._time = time.time
        self._time_ns = time.time_ns

    def time(self) -> float:
        return self._time() + self.offset_ns / 1e9

    def time_ns(self) -> int:
        return self._time_ns() + self.offset_ns

    def real_time(self) -> float:
        return self._time()

    @contextlib.contextmanager
    def installed(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        with monkeypatch.context() as patch:
            patch.setattr(time, "time", self.time)
            patch.setattr(time, "time_ns", self.time_ns)
            yield


HOUR_NS = 3600 * 10**9


async def test_wall_clock_steps(
    mosquitto: Mosquitto, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wall clock jumps an hour forwards, then two hours back, while events flow: no
    timer fires early (no ack timeout, no link change) and, after the step back, the ack
    timer still fires on time when acks really stop. Events keep generation order though
    their timestamps go backwards, and time-range queries see their stepped times."""
    clock = SteppedClock()
    ack_timeout = 1.0
    async with matrix(mosquitto, proxy, ack_timeout_seconds=ack_timeout) as m:
        with clock.installed(monkeypatch), m.child.listener("link.state") as states:
            stamps: list[int] = []
            for step in (0, +HOUR_NS, -2 * HOUR_NS):
                clock.offset_ns += step
                stamps.append(clock.time_ns())
                await m.generate(200, time_ns=clock.time_ns())
                await m.drained()
            assert transitions(states) == []
            # Timers still measure real time after the step back: stop the acks.
            proxy.stall(direction="down")
            started = time.monotonic()
            await m.generate(10, time_ns=clock.time_ns())
            await states.wait_for(is_state("awaiting_peer", LINK), TIMEOUT)
            waited = time.monotonic() - started
            proxy.stall(False)
            await m.drained()
            status = m.child.status()
        assert ack_timeout * 0.9 <= waited <= ack_timeout + 2.0, waited
        assert transitions(states) == [("active", "awaiting_peer"), ("awaiting_peer", "active")]
        m.check_delivery("wall clock steps")
        # Queries follow the events' own (stepped) times.
        later = await m.parent.query_events(
            Counted.type_name, start_ns=stamps[1], end_ns=stamps[1] + HOUR_NS // 2, limit=1000
        )
        assert sorted(Counted.model_validate_json(e.payload).n for e in later) == list(
            range(200, 400)
        )
        # Status: wall-clock stamps show the stepped clock, ages are measured monotonic.
        link_status = status["links"][LINK]
        assert link_status["state"] == "active"
        assert link_status["seconds_since_heard"] < TIMEOUT
        assert link_status["last_heard"] < clock.real_time() - HOUR_NS / 1e9 / 2
