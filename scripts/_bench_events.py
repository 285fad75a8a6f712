"""Durable events (gwproactor only): a burst of ``generate_event``, and the re-upload of a
backlog to a parent that acks.

Written against the events API of the links-and-events work: ``ProactorSettings.store``,
``Proactor.generate_event(event) -> asyncio.Future[Result[int, StoreError]]`` and
``Proactor.store.pending_count``. Where that API is not there yet, each workload returns
``{"pending": <what is missing>}`` instead of a figure: nothing is faked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from _bench_wire import CHILD, PARENT, Json, emit, monotonic_ns, wait_command
from result import Ok

from gwproactor import (
    BrokerSettings,
    Event,
    LinkSettings,
    MessageRegistry,
    Proactor,
    ProactorSettings,
)
from gwproactor.config import PathSettings
from gwproactor.observe.listeners import CommEvent

_SETTLED = ("awaiting_peer", "active")
_POLL_S = 0.002


class BenchEvent(Event):
    type_name: ClassVar[str] = "bench.event"
    channel: str
    value: float


def api_missing(proactor: Proactor | None = None) -> str:
    """What of the events API is missing ('' when it all seems there)."""
    if "store" not in ProactorSettings.model_fields:
        return "ProactorSettings has no `store` setting yet"
    if proactor is not None and not hasattr(getattr(proactor, "store", None), "pending_count"):
        return "Proactor has no `store.pending_count` yet"
    return ""


@contextlib.contextmanager
def _state_dir(cfg: Json) -> Iterator[str]:
    """The worker's own state directory (under the benchmark's work directory), or a
    temporary one when run on its own."""
    if cfg.get("state_dir"):
        yield cfg["state_dir"]
        return
    with tempfile.TemporaryDirectory(prefix="gwproactor-bench-") as tmp:
        yield tmp


def _settings(name: str, state_dir: Path, links: dict[str, LinkSettings]) -> ProactorSettings:
    settings: Any = {"name": name, "links": links, "paths": PathSettings(state_dir=state_dir)}
    return ProactorSettings(**settings)


def _is_active(event: CommEvent) -> bool:
    return event.data.get("new") == "active"


def _is_settled(event: CommEvent) -> bool:
    return event.data.get("new") in _SETTLED


def _events(count: int, tag: str) -> list[BenchEvent]:
    return [BenchEvent(channel=f"{tag}-{i % 16}", value=i + 0.5) for i in range(count)]


async def _generate(proactor: Proactor, events: list[BenchEvent]) -> tuple[float, int]:
    """Generate all ``events`` without awaiting in between, then await every future.
    Returns (seconds, failures). Raises NotImplementedError if generate_event is a stub."""
    start = time.perf_counter()
    futures = [proactor.generate_event(event) for event in events]
    results = await asyncio.gather(*futures)
    elapsed = time.perf_counter() - start
    return elapsed, sum(1 for r in results if not isinstance(r, Ok))


async def events_burst(cfg: Json) -> Json:
    """A warm-up burst, then a timed burst of ``count`` events at default durability."""
    missing = api_missing()
    if missing:
        return {"pending": missing}
    count = cfg["count"]
    with _state_dir(cfg) as tmp:
        proactor = Proactor(_settings(CHILD, Path(tmp), {}), MessageRegistry(BenchEvent))
        missing = api_missing(proactor)
        if missing:
            return {"pending": missing}
        await proactor.start()
        try:
            try:
                await _generate(proactor, _events(min(count // 10, 1000), "warm"))
            except NotImplementedError:
                return {"pending": "Proactor.generate_event is not implemented yet"}
            elapsed, failures = await _generate(proactor, _events(count, "burst"))
        finally:
            await proactor.stop_and_join()
    return {"count": count, "failures": failures, "seconds": elapsed, "rate": count / elapsed}


async def reupload_child(cfg: Json) -> Json:
    """A child whose upstream peer is absent stores ``count`` events; once the parent comes
    up (the orchestrator starts it after READY), time from the link becoming active until
    the store has nothing pending."""
    missing = api_missing()
    if missing:
        emit("READY", {"pending": missing})
        return {"pending": missing}
    count = cfg["count"]
    broker = BrokerSettings(port=cfg["port"], reconnect_min_seconds=0.05)
    link = LinkSettings(peer=PARENT, role="upstream", broker=broker)
    with _state_dir(cfg) as tmp:
        proactor = Proactor(
            _settings(CHILD, Path(tmp), {PARENT: link}), MessageRegistry(BenchEvent)
        )
        missing = api_missing(proactor)
        if missing:
            emit("READY", {"pending": missing})
            return {"pending": missing}
        try:
            with proactor.listener("link.state") as states:
                await proactor.start()
                await states.wait_for(_is_settled, 30)
            try:
                elapsed, failures = await _generate(proactor, _events(count, "backlog"))
            except NotImplementedError:
                reason = "Proactor.generate_event is not implemented yet"
                emit("READY", {"pending": reason})
                return {"pending": reason}
            store: Any = getattr(proactor, "store")  # noqa: B009  (typed once the API lands)
            backlog = int(store.pending_count)
            with proactor.listener("link.state") as states:
                emit("READY", {"backlog": backlog})
                await states.wait_for(_is_active, cfg.get("timeout", 60.0))
            active_ns = monotonic_ns()
            deadline = time.monotonic() + cfg.get("timeout", 60.0)
            # The store has no "empty" notification; a 2 ms poll only measures.
            while store.pending_count > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(_POLL_S)
            empty_ns = monotonic_ns()
            left = int(store.pending_count)
        finally:
            await proactor.stop_and_join()
    seconds = (empty_ns - active_ns) / 1e9
    return {
        "count": count,
        "generate_failures": failures,
        "generate_rate": count / elapsed,
        "backlog": backlog,
        "left": left,
        "complete": left == 0,
        "seconds": seconds,
        "rate": (backlog - left) / seconds if seconds > 0 else 0.0,
    }


async def reupload_parent(cfg: Json) -> Json:
    """The parent: a downstream link to the child; it stores and acks what comes up. Runs
    until the orchestrator says ``stop``."""
    broker = BrokerSettings(port=cfg["port"], reconnect_min_seconds=0.05)
    link = LinkSettings(peer=CHILD, role="downstream", broker=broker)
    with _state_dir(cfg) as tmp:
        proactor = Proactor(
            _settings(PARENT, Path(tmp), {CHILD: link}), MessageRegistry(BenchEvent)
        )
        try:
            with proactor.listener("link.state") as states:
                await proactor.start()
                await states.wait_for(_is_settled, 30)
            emit("READY", {})
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, wait_command, cfg.get("timeout", 120.0))
            return {"events_received": proactor.stats.events_received}
        finally:
            await proactor.stop_and_join()


def fsync_latency_us(directory: Path, count: int = 200) -> float:
    """Median µs of appending 4 KiB to a file and ``fdatasync``-ing it (what a WAL commit
    with ``synchronous=FULL`` costs the disk), in ``directory``."""
    path = directory / "fsync-probe"
    block = b"x" * 4096
    times: list[int] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            os.write(fd, block)
            started = time.perf_counter_ns()
            os.fdatasync(fd)
            times.append(time.perf_counter_ns() - started)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times) / 1e3


async def events_awaited(cfg: Json) -> Json:
    """``count`` events generated one at a time, each awaited before the next (as a typical
    actor writes it), next to its references, interleaved in ``blocks`` so that a change in
    the machine's load hits them alike:

    - the bare commit: the same transaction (BEGIN IMMEDIATE, the INSERT the writer runs,
      COMMIT) of the same kind of rows (ids, the events' own JSON), on a second
      connection to the *same* store file, with the store's pragmas, on this thread: the
      part of an awaited event that is sqlite's and the disk's;
    - the hand-off floor: the same bare commit done by a plain thread, awaited from the
      loop through ``call_soon_threadsafe`` (what any loop-plus-writer-thread design pays);
    - the disk's fsync (4 KiB append + fdatasync).
    """
    missing = api_missing()
    if missing:
        return {"pending": missing}
    count = cfg["count"]
    blocks = max(1, min(cfg.get("blocks", 4), count))
    with _state_dir(cfg) as tmp:
        proactor = Proactor(_settings(CHILD, Path(tmp), {}), MessageRegistry(BenchEvent))
        await proactor.start()
        try:
            for event in _events(min(count // 10, 100), "warm"):
                await proactor.generate_event(event)
            events = _events(count, "awaited")
            bare = BareCommits(proactor.store.path, _events(count, "bare"))
            floor = HandoffFloor(proactor.store.path, _events(count, "floor"))
            try:
                awaited = Awaited(proactor)
                for block in range(blocks):
                    part = slice(block * count // blocks, (block + 1) * count // blocks)
                    await awaited.run(events[part])
                    bare.run(part)
                    await floor.run(part)
            finally:
                bare.close()
                floor.close()
        finally:
            await proactor.stop_and_join()
        fsync_us = fsync_latency_us(Path(tmp))
    per = 1e6 / count
    return {
        "count": count,
        "failures": awaited.failures,
        "rate": count / awaited.wall,
        "wall_us_per_event": awaited.wall * per,
        "cpu_us_per_event": awaited.cpu * per,
        "loop_cpu_us_per_event": awaited.loop_cpu * per,
        "threads_us_per_event": {
            name: [user * per, sys * per] for name, (user, sys) in awaited.threads.items()
        },
        "fsync_us": fsync_us,
        "bare_cpu_us_per_commit": bare.cpu * per,
        "bare_wall_us_per_commit": bare.wall * per,
        "floor_cpu_us_per_event": floor.cpu * per,
        "floor_loop_cpu_us_per_event": floor.loop_cpu * per,
        "floor_wall_us_per_event": floor.wall * per,
    }


class Awaited:
    """Awaited ``generate_event`` calls, timed block by block (CPU of the whole process, of
    the loop's thread, and of each thread by name)."""

    def __init__(self, proactor: Proactor) -> None:
        self.proactor = proactor
        self.failures = 0
        self.cpu = self.wall = self.loop_cpu = 0.0
        self.threads: dict[str, tuple[float, float]] = {}

    async def run(self, events: list[BenchEvent]) -> None:
        generate = self.proactor.generate_event
        failures = 0
        threads0 = _thread_cpu()
        cpu0, wall0, loop0 = time.process_time(), time.perf_counter(), time.thread_time()
        for event in events:
            if not isinstance(await generate(event), Ok):
                failures += 1
        self.cpu += time.process_time() - cpu0
        self.wall += time.perf_counter() - wall0
        self.loop_cpu += time.thread_time() - loop0
        self.failures += failures
        for name, (user, sys) in _thread_cpu().items():
            user0, sys0 = threads0.get(name, (user, sys))
            was = self.threads.get(name, (0.0, 0.0))
            self.threads[name] = (was[0] + user - user0, was[1] + sys - sys0)


def _bare_rows(events: list[BenchEvent]) -> list[tuple[object, ...]]:
    """The rows the store's writer inserts for ``events`` generated by a gateway without
    an upstream link (archived): ids from ``new_message_id`` as ``generate_event`` draws
    them, the events' JSON with ``src`` filled in."""
    from gwproactor.store._ops import event_bytes
    from gwproactor.wire.message import new_message_id

    rows: list[tuple[object, ...]] = []
    for event in events:
        payload = BenchEvent.__pydantic_serializer__.to_json(
            event.model_copy(update={"src": CHILD})
        )
        event_id = new_message_id()
        nbytes = event_bytes(event.type_name, event_id, CHILD, payload)
        rows.append((event_id, event.type_name, event.time_ns, CHILD, payload, 0, nbytes, None))
    return rows


def _open_like_the_store(path: Path) -> Any:
    """A second connection to the store's file, configured as the store configures its own."""
    from gwproactor.store import StoreSettings
    from gwproactor.store._schema import open_database

    conn, _ = open_database(path, StoreSettings())
    return conn


def _commit_one(conn: Any, row: tuple[object, ...]) -> None:
    """One transaction of one INSERT, as the store's writer runs it for a batch of one."""
    from gwproactor.store._sqlite import _INSERT

    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    cur.execute(_INSERT, row)
    cur.execute("COMMIT")


class BareCommits:
    """The floor under an awaited event: one-row transactions straight on a connection to
    the same store file, on this thread (the loop's; nothing else runs meanwhile)."""

    def __init__(self, path: Path, events: list[BenchEvent]) -> None:
        self.rows = _bare_rows(events)
        self.conn = _open_like_the_store(path)
        self.cpu = self.wall = 0.0

    def run(self, part: slice) -> None:
        conn = self.conn
        rows = self.rows[part]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for row in rows:
            _commit_one(conn, row)
        self.cpu += time.process_time() - cpu0
        self.wall += time.perf_counter() - wall0

    def close(self) -> None:
        self.conn.close()


class HandoffFloor:
    """The bare commit done by a plain thread and awaited from the loop: the least a design
    with a writer thread can cost (one queue put, one wake-up each way, one future)."""

    def __init__(self, path: Path, events: list[BenchEvent]) -> None:
        import queue
        import threading

        self.rows = _bare_rows(events)
        self.cpu = self.wall = self.loop_cpu = 0.0
        self._queue: queue.SimpleQueue[tuple[asyncio.Future[None], tuple[object, ...]] | None]
        self._queue = queue.SimpleQueue()
        self._path = path
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._serve, name="handoff-floor", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn = _open_like_the_store(self._path)
        try:
            while (item := self._queue.get()) is not None:
                future, row = item
                _commit_one(conn, row)
                self._loop.call_soon_threadsafe(future.set_result, None)
        finally:
            conn.close()

    async def run(self, part: slice) -> None:
        loop, put = self._loop, self._queue.put
        rows = self.rows[part]
        cpu0, wall0, loop0 = time.process_time(), time.perf_counter(), time.thread_time()
        for row in rows:
            future: asyncio.Future[None] = loop.create_future()
            put((future, row))
            await future
        self.cpu += time.process_time() - cpu0
        self.wall += time.perf_counter() - wall0
        self.loop_cpu += time.thread_time() - loop0

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)


def _thread_cpu() -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds of each thread of this process, by Python thread name
    (``/proc``'s ``comm`` for a thread Python does not know) and id (Linux; empty
    elsewhere). In clock ticks: coarse, read over many events."""
    import threading

    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, tuple[float, float]] = {}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            name = names.get(int(tid))
            if name is None:
                with open(f"/proc/self/task/{tid}/comm") as comm:
                    name = comm.read().strip()
        except OSError:
            continue
        out[f"{name}[{tid}]"] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return out
