"""Python bytecode per unit of work, by function: a profile that the machine's load does not
disturb (the figures are counts, not times).

    .venv/bin/python scripts/profile_opcodes.py events    # loop thread, per awaited generate_event
    .venv/bin/python scripts/profile_opcodes.py writer    # the store's writer thread, per event
    .venv/bin/python scripts/profile_opcodes.py receive   # link -> dispatch -> actor, per message
    .venv/bin/python scripts/profile_opcodes.py floor     # loop CPU of a bare thread -> loop hop

``events``: a gateway without links (its events are archived), store durability ``normal``
(no fsync: the loop's share is the same), ``--count`` events awaited one at a time while
``sys.settrace`` counts the opcodes the loop thread runs, asyncio's included. ``writer``:
the same, counting the opcodes of the store's writer thread instead (``threading.settrace``).
``receive``: gwproactor's link (memory transport, nothing on the wire) fed envelopes of the
benchmark's workload one read at a time, as at 1,000 msg/s, to the benchmark's counting actor.
``floor``: the loop thread's CPU per round trip of a future resolved by another thread
with ``call_soon_threadsafe`` (what any awaited commit costs, before gwproactor's own work).
State goes to a temporary directory removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
for _path in (str(SCRIPTS), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

Counts = collections.Counter[tuple[str, str]]


def _tracer(counts: Counts) -> Any:
    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[(Path(code.co_filename).name, code.co_name)] += 1
        return trace

    return trace


def _print(counts: Counts, per: int, what: str, top: int) -> None:
    print(f"{sum(counts.values()) / per:,.1f} opcodes per {what}")
    for (filename, function), count in counts.most_common(top):
        print(f"{count / per:9.1f}  {filename}:{function}")


def _writer_tracer(counts: Counts, on: list[bool]) -> Any:
    """A tracer for the threads started from now on that counts only in the store's writer
    thread, and only while ``on[0]``."""

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if not threading.current_thread().name.startswith("store["):
            return None
        frame.f_trace_opcodes = True
        if event == "opcode" and on[0]:
            code = frame.f_code
            counts[(Path(code.co_filename).name, code.co_name)] += 1
        return trace

    return trace


async def _events(count: int, top: int, writer: bool = False) -> None:
    from _bench_events import BenchEvent

    from gwproactor import Proactor, ProactorSettings
    from gwproactor.config import PathSettings
    from gwproactor.store import StoreSettings
    from gwproactor.wire.codec import MessageRegistry

    with tempfile.TemporaryDirectory(prefix="gwproactor-opcodes-") as tmp:
        settings = ProactorSettings(
            name="solo",
            paths=PathSettings(state_dir=Path(tmp)),
            store=StoreSettings(durability="normal"),
        )
        proactor = Proactor(settings, MessageRegistry(BenchEvent))
        counts: Counts = collections.Counter()
        on = [False]
        if writer:
            threading.settrace(_writer_tracer(counts, on))
        await proactor.start()
        threading.settrace(None)
        try:
            for i in range(50):
                await proactor.generate_event(BenchEvent(channel="warm", value=i))
            events = [BenchEvent(channel=f"c{i % 16}", value=i + 0.5) for i in range(count)]
            on[0] = True
            if not writer:
                sys.settrace(_tracer(counts))
            try:
                for event in events:
                    await proactor.generate_event(event)
            finally:
                sys.settrace(None)
                on[0] = False
        finally:
            await proactor.stop_and_join()
    where = "the store's writer thread" if writer else "the loop thread"
    _print(counts, count, f"awaited event in {where}", top)


async def _receive(count: int, top: int) -> None:
    from _bench_gw import BenchReading, Counter
    from _bench_wire import MESSAGE_TYPE, Tally

    from gwproactor import BrokerSettings, LinkSettings, Proactor, ProactorSettings
    from gwproactor.config import PathSettings
    from gwproactor.mqtt import MemoryBroker
    from gwproactor.mqtt._memory import MemoryTransport
    from gwproactor.wire.codec import MessageRegistry
    from gwproactor.wire.message import Message

    with tempfile.TemporaryDirectory(prefix="gwproactor-opcodes-") as tmp:
        link_settings = LinkSettings(peer="child", role="downstream", broker=BrokerSettings())
        settings = ProactorSettings(
            name="parent", links={"child": link_settings}, paths=PathSettings(state_dir=Path(tmp))
        )
        broker = MemoryBroker()
        proactor = Proactor(
            settings,
            MessageRegistry(BenchReading),
            transport_factory=lambda link, listener: MemoryTransport(
                broker, listener, stats=link.stats
            ),
        )
        tally = Tally(10**9, latency=True)
        counter = Counter(proactor, tally)
        proactor.add_communicator(counter)
        proactor.route(MESSAGE_TYPE, counter.name)
        await proactor.start()
        try:
            link = proactor.link("child")
            wire = []
            for _ in range(count + 100):
                reading = BenchReading(
                    channel="c", value=1.5, unit="W", sent_ns=time.monotonic_ns()
                )
                message = Message.create("child", "parent", reading)
                wire.append((link.codec.header_topic(message.header), link.codec.encode(message)))
            for topic, payload in wire[:100]:  # warm: the link becomes active, caches fill
                link.on_transport_message(topic, payload)
                link.on_transport_read_done()
            counts: Counts = collections.Counter()
            sys.settrace(_tracer(counts))
            try:
                for topic, payload in wire[100:]:
                    link.on_transport_message(topic, payload)
                    link.on_transport_read_done()
            finally:
                sys.settrace(None)
        finally:
            await proactor.stop_and_join()
    assert tally.count == count + 100, tally.count
    _print(counts, count, "received message (one per read)", top)


async def _floor(count: int) -> None:
    loop = asyncio.get_running_loop()
    requests: queue.SimpleQueue[asyncio.Future[int] | None] = queue.SimpleQueue()

    def worker() -> None:
        while (future := requests.get()) is not None:
            loop.call_soon_threadsafe(future.set_result, 1)

    thread = threading.Thread(target=worker, name="floor-worker")
    thread.start()
    try:
        for rounds in (200, count):
            cpu0 = time.thread_time()
            for _ in range(rounds):
                future = loop.create_future()
                requests.put(future)
                await future
        cpu = time.thread_time() - cpu0
    finally:
        requests.put(None)
        thread.join()
    print(f"bare thread -> loop round trip: {cpu / count * 1e6:.1f} µs loop-thread CPU")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=("events", "writer", "receive", "floor"))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    os.environ.setdefault("XDG_STATE_HOME", tempfile.gettempdir())
    if args.path in ("events", "writer"):
        asyncio.run(_events(args.count, args.top, writer=args.path == "writer"))
    elif args.path == "receive":
        asyncio.run(_receive(args.count, args.top))
    else:
        asyncio.run(_floor(max(args.count, 2000)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
