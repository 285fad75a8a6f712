"""The gwproactor side of the benchmark: the same workloads through a Proactor.

Each function runs in a fresh worker process: a Proactor named ``parent`` with one link
(peer ``child``) to the benchmark's broker, the ``bench.reading`` payload registered, and
an actor that counts (receive), publishes (publish) or nothing (start). Link states are
awaited through a ``link.state`` listener, which is closed before any traffic so that the
hot path runs as it would in service (no comm events emitted per message).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from _bench_wire import (
    CHILD,
    MESSAGE_TYPE,
    PARENT,
    Json,
    Tally,
    emit,
    monotonic_ns,
    raw_filters,
    rss_kib,
    sent_ns_of,
    wait_command,
)
from result import Ok, Result

from gwproactor import (
    QOS,
    BrokerSettings,
    Communicator,
    LinkSettings,
    Message,
    MessageRegistry,
    Payload,
    Proactor,
    ProactorSettings,
    ServicesInterface,
)
from gwproactor.config import PathSettings
from gwproactor.observe.listeners import CommEvent

_SETTLED = ("awaiting_peer", "active")


class BenchReading(Payload):
    """The payload of the 273-byte envelope (its ``pad`` field is ignored)."""

    type_name: ClassVar[str] = MESSAGE_TYPE
    channel: str
    value: float
    unit: str
    sent_ns: int


class Counter(Communicator):
    """Counts readings into a :class:`Tally`; sets ``done`` when all expected arrived."""

    def __init__(self, services: ServicesInterface, tally: Tally) -> None:
        super().__init__("counter", services)
        self.tally = tally
        self.done = asyncio.Event()

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        if self.tally.hit(monotonic_ns(), message.payload.sent_ns):
            self.done.set()
        return Ok(None)


class RawCounter(Counter):
    """Counts raw messages (``RawMessage``: the bytes as they came) into a :class:`Tally`."""

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        sent_ns = sent_ns_of(message.payload.payload) if self.tally.latency else 0
        if self.tally.hit(monotonic_ns(), sent_ns):
            self.done.set()
        return Ok(None)


class Publisher(Communicator):
    """An actor that only publishes (the benchmark drives it from a task)."""

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        return Ok(None)


def bench_settings(cfg: Json, qos: int, links: dict[str, str] | None = None) -> ProactorSettings:
    """Settings of the gateway ``parent``: one downstream link per ``{link name: peer}``,
    its state (store, logs) in the worker's own ``state_dir``."""
    broker = BrokerSettings(port=cfg["port"], reconnect_min_seconds=0.05)
    extra: Json = {}
    if "dedup_window" in cfg:
        extra["dedup_window"] = cfg["dedup_window"]
    return ProactorSettings(
        name=PARENT,
        links={
            name: LinkSettings(peer=peer, role="downstream", broker=broker, qos=QOS(qos), **extra)
            for name, peer in (links or {CHILD: CHILD}).items()
        },
        paths=PathSettings(state_dir=Path(cfg["state_dir"])),
    )


def _settled(names: set[str]) -> Callable[[CommEvent], bool]:
    settled: set[str] = set()

    def predicate(event: CommEvent) -> bool:
        if event.data.get("new") in _SETTLED:
            settled.add(event.source)
        return settled >= names

    return predicate


def dedup_cost_ns(size: int, count: int = 200_000) -> float:
    """ns per ``DedupWindow.seen`` of a new id on a full window of ``size`` (best of 3),
    less the cost of the same loop calling a no-op; thread CPU time, so that other processes
    taking the CPU do not count."""
    from gwproactor.links import DedupWindow

    def noop(_: str) -> bool:
        return False

    ids = [f"fresh-{i}" for i in range(count)]

    def timed(seen: Callable[[str], bool]) -> float:
        started = time.thread_time_ns()
        for message_id in ids:
            seen(message_id)
        return (time.thread_time_ns() - started) / count

    best = float("inf")
    for _ in range(3):
        window = DedupWindow(size)
        for i in range(size):
            window.seen(f"old-{i}")
        best = min(best, timed(window.seen) - timed(noop))
        ids = [f"{message_id}+" for message_id in ids]  # new objects, hashes not cached
    return best


async def start_subscribed(proactor: Proactor, timeout: float = 30.0) -> None:
    """Start ``proactor`` and return once every link has all its subscriptions acked."""
    with proactor.listener("link.state") as states:
        await proactor.start()
        await states.wait_for(_settled(set(proactor.links)), timeout)


async def receive_gw(cfg: Json) -> Json:
    """gwproactor receiving: link → decode → receive queue → dispatch → counting actor.

    With ``raw_filters`` N: the actor subscribes to N raw filters on the link instead (one
    of them matches :data:`RAW_TOPIC`, what the publisher then sends) and gets RawMessages.
    With ``dedup_window``: the link remembers that many ids, and its window is filled with
    other ids before the burst, so that every message of the burst evicts one."""
    tally = Tally(cfg["count"], latency=cfg["mode"] == "latency")
    proactor = Proactor(bench_settings(cfg, cfg["qos"]), MessageRegistry(BenchReading))
    filters = cfg.get("raw_filters", 0)
    counter = (RawCounter if filters else Counter)(proactor, tally)
    proactor.add_communicator(counter)
    proactor.route(MESSAGE_TYPE, counter.name)
    try:
        # Made before the start: "subscribed" then includes every raw filter.
        for topic_filter in raw_filters(filters):
            proactor.subscribe_raw(CHILD, topic_filter, counter.name)
        await start_subscribed(proactor)
        if "dedup_window" in cfg:
            window: Any = getattr(proactor.link(CHILD), "_dedup")  # noqa: B009
            for i in range(cfg["dedup_window"]):
                window.seen(f"prefill-{i}")
        emit("READY", {"tcp_nodelay": proactor.link(CHILD).settings.broker.tcp_nodelay})
        idle = cfg.get("idle_timeout", 20.0)
        last = -1
        while not counter.done.is_set() and tally.count != last:
            last = tally.count
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(counter.done.wait(), idle)
        result = tally.result()
        link_stats = proactor.stats.link(CHILD)
        result["decode_errors"] = link_stats.decode_errors_total
        result["duplicates"] = link_stats.duplicates
        result["queue_high_water"] = proactor.stats.queue_high_water
        result["queue_pauses"] = proactor.stats.queue_pauses
        if "dedup_window" in cfg:
            result["dedup_ns_per_id"] = dedup_cost_ns(cfg["dedup_window"])
        return result
    finally:
        await proactor.stop_and_join()


async def publish_gw(cfg: Json) -> Json:
    """An actor publishing ``count`` readings to the peer with ``services.send_to_peer``,
    yielding to the loop every 256 messages so that PUBACKs are read. CPU is counted from
    the first publish until told to stop (the subscriber has them all), like raw paho's."""
    count, qos = cfg["count"], cfg["qos"]
    proactor = Proactor(bench_settings(cfg, qos), MessageRegistry(BenchReading))
    actor = Publisher("publisher", proactor)
    proactor.add_communicator(actor)
    sent_ns = monotonic_ns()
    payloads = [
        BenchReading(channel=f"bench-ch-{i % 16}", value=i % 1000 + 0.5, unit="W", sent_ns=sent_ns)
        for i in range(count)
    ]
    try:
        await start_subscribed(proactor)
        emit("READY", {"tcp_nodelay": proactor.link(CHILD).settings.broker.tcp_nodelay})
        services = actor.services
        failures = 0
        cpu0 = time.process_time()
        first_ns = monotonic_ns()
        for i, payload in enumerate(payloads):
            if services.send_to_peer(CHILD, payload).is_err():
                failures += 1
            if i & 255 == 255:
                await asyncio.sleep(0)
        loop_end_ns = monotonic_ns()
        cpu_loop = time.process_time() - cpu0
        loop = asyncio.get_running_loop()
        # Until the subscriber has them all: writing what is buffered, reading PUBACKs.
        await loop.run_in_executor(None, wait_command, cfg.get("timeout", 120.0))
        cpu = time.process_time() - cpu0
        return {
            "count": count,
            "failures": failures,
            "first_ns": first_ns,
            "loop_end_ns": loop_end_ns,
            "cpu_loop_us_per_msg": cpu_loop / count * 1e6,
            "cpu_us_per_msg": cpu / count * 1e6,
        }
    finally:
        await proactor.stop_and_join()


async def start_gw(cfg: Json) -> Json:
    """A proactor with two links; time from launch until both have every subscription
    acked, RSS then, and CPU while idle for ``idle_seconds`` (links pinging their absent
    peers as they do in service)."""
    settings = bench_settings(cfg, 1, {"child0": "child0", "child1": "child1"})
    proactor = Proactor(settings, MessageRegistry(BenchReading))
    try:
        await start_subscribed(proactor)
        subscribed_ns = monotonic_ns()
        rss = rss_kib()
        emit("READY", {"subscribed": True})
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(cfg["idle_seconds"])
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        return {
            "subscribed": True,
            "startup_ms": (subscribed_ns - cfg["launch_ns"]) / 1e6,
            "rss_mib": rss / 1024,
            "idle_cpu_fraction": cpu / wall,
        }
    finally:
        await proactor.stop_and_join()
