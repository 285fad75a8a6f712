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
    actor writes it): the rate, CPU per event, and the disk's fsync latency next to them."""
    missing = api_missing()
    if missing:
        return {"pending": missing}
    count = cfg["count"]
    with _state_dir(cfg) as tmp:
        proactor = Proactor(_settings(CHILD, Path(tmp), {}), MessageRegistry(BenchEvent))
        await proactor.start()
        try:
            for event in _events(min(count // 10, 100), "warm"):
                await proactor.generate_event(event)
            events = _events(count, "awaited")
            failures = 0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            loop0, threads0 = time.thread_time(), _thread_cpu()
            for event in events:
                if not isinstance(await proactor.generate_event(event), Ok):
                    failures += 1
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            loop_cpu = time.thread_time() - loop0
            threads = {
                name: (
                    user - threads0.get(name, (0.0, 0.0))[0],
                    sys - threads0.get(name, (0.0, 0.0))[1],
                )
                for name, (user, sys) in _thread_cpu().items()
            }
        finally:
            await proactor.stop_and_join()
        fsync_us = fsync_latency_us(Path(tmp))
        bare = bare_commits(Path(tmp), count)
    return {
        "count": count,
        "failures": failures,
        "rate": count / wall,
        "wall_us_per_event": wall / count * 1e6,
        "cpu_us_per_event": cpu / count * 1e6,
        "loop_cpu_us_per_event": loop_cpu / count * 1e6,
        "threads_us_per_event": {
            name: [user / count * 1e6, sys / count * 1e6] for name, (user, sys) in threads.items()
        },
        "fsync_us": fsync_us,
        "bare_cpu_us_per_commit": bare["cpu_us"],
        "bare_wall_us_per_commit": bare["wall_us"],
    }


def bare_commits(directory: Path, count: int) -> Json:
    """The floor under an awaited event: ``count`` transactions of one INSERT each, straight
    on a sqlite connection to a store opened as gwproactor opens it (same schema, WAL,
    ``synchronous`` from the default settings), on this thread: CPU and wall µs each."""
    from gwproactor.store import StoreSettings
    from gwproactor.store._schema import open_database
    from gwproactor.store._sqlite import _INSERT

    conn, _ = open_database(directory / "bare.sqlite", StoreSettings())
    try:
        payload = b'{"src":"child","time_ns":0,"channel":"bare-1","value":1.5}'
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(count):
            conn.execute("BEGIN IMMEDIATE")
            row = (f"bare-{i}", "bench.event", time.time_ns(), CHILD, payload, 0, 80, None)
            conn.execute(_INSERT, row)
            conn.execute("COMMIT")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        conn.close()
    return {"cpu_us": cpu / count * 1e6, "wall_us": wall / count * 1e6}


def _thread_cpu() -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds of each thread of this process, by thread name (Linux;
    empty elsewhere). Names are ``/proc``'s ``comm``: the event-store writer names itself."""
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
            with open(f"/proc/self/task/{tid}/comm") as comm:
                name = f"{comm.read().strip()}[{tid}]"
        except OSError:
            continue
        out[name] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return out
