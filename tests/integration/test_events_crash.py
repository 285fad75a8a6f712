"""SIGKILL the child gateway mid-generation and mid-re-upload: nothing lost, nothing twice.

The child runs as a subprocess (:mod:`tests.procs.child_gateway`) and prints a line for
each event ``generate_event`` committed; the parent runs in the test. Every event the child
ever reported committed must reach the parent, and no event may reach the parent's actor
twice, across two SIGKILLs and two parent restarts; the child's store ends empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gwproactor import BrokerSettings, Proactor
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
    Counted,
    EventRecorder,
    pair_settings,
    record_events,
    running,
    wait_until,
)
from tests.procs import ChildProcess

pytestmark = [pytest.mark.broker, pytest.mark.slow]

log = logging.getLogger(__name__)

TIMEOUT = 30.0
START_TIMEOUT = 20.0  # a child process imports everything before it says "ready"


def _parent(broker: Mosquitto) -> tuple[Proactor, EventRecorder]:
    """The parent gateway; each instance opens the same store (so it de-duplicates across
    its own restarts) and gets a fresh recorder."""
    settings, _ = pair_settings(
        BrokerSettings(port=broker.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5)
    )
    parent = Proactor(settings, REGISTRY)
    recorder = record_events(parent)
    return parent, recorder


def _counts(store_file: Path) -> tuple[int, int]:
    """(pending, all) events in a store no process has open, read-only."""
    with contextlib.closing(sqlite3.connect(f"file:{store_file}?mode=ro", uri=True)) as conn:
        pending = conn.execute("SELECT count(*) FROM events WHERE pending = 1").fetchone()[0]
        total = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return int(pending), int(total)


class _Children:
    """Starts child runs on one state directory and kills whatever is left at the end."""

    def __init__(self, broker: Mosquitto, tmp_path: Path) -> None:
        self.port = broker.port
        self.state_dir = tmp_path / "child-state"
        self.tmp_path = tmp_path
        self.runs: list[ChildProcess] = []

    @property
    def store_file(self) -> Path:
        return self.state_dir / "events.db"

    async def start(
        self,
        first: int,
        count: int,
        *,
        exit_when_drained: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> ChildProcess:
        child = ChildProcess(
            port=self.port,
            state_dir=self.state_dir,
            start=first,
            count=count,
            log_path=self.tmp_path / f"child-{len(self.runs)}.log",
            exit_when_drained=exit_when_drained,
            extra_args=("--window", "200", *extra_args),
        )
        self.runs.append(child)
        return await child.start(START_TIMEOUT)

    async def kill_all(self) -> None:
        for child in self.runs:
            await child.kill()

    def committed(self, first_run: int = 0) -> set[int]:
        """What runs ``first_run`` and later reported committed."""
        return {n for child in self.runs[first_run:] for n in child.output.committed}


@contextlib.asynccontextmanager
async def _children(broker: Mosquitto, tmp_path: Path) -> AsyncIterator[_Children]:
    children = _Children(broker, tmp_path)
    try:
        yield children
    finally:
        await children.kill_all()


def _has(recorder: EventRecorder, wanted: set[int]) -> Callable[[], bool]:
    return lambda: wanted <= {e.n for e in recorder.events}


async def test_child_killed_mid_generation_and_mid_reupload_loses_and_repeats_nothing(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with _children(mosquitto, tmp_path) as children:
        # 1. Parent up. Kill the child while it generates (and uploads) 0..999.
        parent, first_recorder = _parent(mosquitto)
        async with running(parent):
            # It freezes itself after 600 commits, so that the kill lands in the middle
            # even when a busy machine lets it run far ahead of our reading its output.
            run_a = await children.start(0, 1000, extra_args=("--freeze-after-committed", "600"))
            await run_a.until(lambda out: len(out.committed) >= 300, TIMEOUT)
            await run_a.kill()
            assert "generated" not in run_a.output.markers  # killed in the middle
            # The restarted child uploads what run A left, adds 1000..1099, and exits
            # once nothing is pending.
            run_b = await children.start(1000, 100, exit_when_drained=True)
            assert await run_b.wait(TIMEOUT) == 0
            assert run_b.output.markers[-2:] == ["drained", "stopped"]
            with parent.listener("message.dispatched") as dispatched:
                await wait_until(_has(first_recorder, children.committed()), dispatched, TIMEOUT)
        # 2. Parent down: a backlog of 1100..2099 builds up in the child's store.
        run_c = await children.start(1100, 1000, extra_args=("--freeze-after-acked", "500"))
        await run_c.until(lambda out: "generated" in out.markers, TIMEOUT)
        assert len(run_c.output.committed) == 1000
        # 3. Parent up again: kill the child once the re-upload is under way (it freezes
        # itself on receiving its 500th ack, so that the kill lands before the re-upload is
        # over however far ahead of our reading its output it runs).
        parent, second_recorder = _parent(mosquitto)
        async with running(parent):
            await run_c.until(lambda out: len(out.acked) >= 100 or "frozen" in out.markers, TIMEOUT)
            await run_c.kill()
            pending, _ = await asyncio.to_thread(_counts, children.store_file)
            log.info(
                "crash: run A killed after %d commits reported; run C killed after %d acks "
                "with %d of its 1000 events still pending",
                len(run_a.output.committed),
                len(run_c.output.acked),
                pending,
            )
            assert pending > 0  # killed in the middle of the re-upload
            run_d = await children.start(2100, 50, exit_when_drained=True)
            assert await run_d.wait(TIMEOUT) == 0
            with parent.listener("message.dispatched") as dispatched:
                wanted = children.committed(first_run=2)
                await wait_until(_has(second_recorder, wanted), dispatched, TIMEOUT)
            archive = await parent.query_events(Counted.type_name, limit=10_000)
            log.info(
                "crash: the parent de-duplicated %d re-sent events", parent.stats.events_duplicate
            )
    received = [e.n for e in first_recorder.events] + [e.n for e in second_recorder.events]
    committed = children.committed()
    # Everything the child ever reported committed reached the parent's actor...
    assert committed <= set(received)
    # ...once each, in generation order (strictly increasing: no repeats, no reordering).
    assert received == sorted(set(received))
    # Run A committed a prefix of its range; a few commits may not have been printed yet
    # when it died, and those arrived too. Nothing arrived that was never generated.
    run_a_received = [n for n in received if n < 1000]
    assert run_a_received == list(range(len(run_a_received)))
    assert len(run_a_received) >= len(children.runs[0].output.committed)
    assert set(received) - committed <= set(run_a_received)
    assert {e.src for e in first_recorder.events + second_recorder.events} == {"child"}
    # The parent's archive agrees: each event stored once.
    assert sorted(Counted.model_validate_json(e.payload).n for e in archive) == received
    # The child exited cleanly with nothing pending.
    assert await asyncio.to_thread(_counts, children.store_file) == (0, 0)


async def test_child_stopped_with_sigterm_keeps_its_pending_events(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # No parent: everything the child generates stays pending, and must survive the stop.
    async with _children(mosquitto, tmp_path) as children:
        child = await children.start(0, 100)
        await child.until(lambda out: "generated" in out.markers, TIMEOUT)
        assert await child.terminate(TIMEOUT) == 0
    assert child.output.markers[-1] == "stopped"
    assert sorted(child.output.committed) == list(range(100))
    assert await asyncio.to_thread(_counts, children.store_file) == (100, 100)
