"""A child whose store fills up while its parent is unreachable: both overflow policies.

The child's store is bounded to a kilobyte (about a dozen ``Counted`` events) and its
parent is not running. ``drop_oldest`` keeps the newest events and drops the oldest;
``refuse_new`` keeps the oldest and refuses the overflow with ``StoreFullError``. Either
way each drop or refusal is counted and reported as a problem, the gateway keeps running,
and once the parent comes up it receives exactly what the store kept.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest
from result import Err, Ok, Result

from gwproactor import BrokerSettings, Proactor, StoreError
from gwproactor.errors import StoreFullError
from gwproactor.observe.listeners import CommEvent
from gwproactor.store import StoreSettings
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    EventRecorder,
    pair_settings,
    record_events,
    running,
    wait_until,
)

pytestmark = pytest.mark.broker

MAX_BYTES = 1000  # a Counted event counts about 85 bytes against it
GENERATED = 40


def _gateways(
    broker: Mosquitto, policy: Literal["drop_oldest", "refuse_new"], **child_settings: Any
) -> tuple[Proactor, Proactor, EventRecorder]:
    parent_settings, child = pair_settings(
        BrokerSettings(port=broker.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5)
    )
    child = child.model_copy(
        update={
            "store": StoreSettings(max_bytes=MAX_BYTES, overflow_policy=policy),
            **child_settings,
        }
    )
    parent, child_proactor = Proactor(parent_settings, REGISTRY), Proactor(child, REGISTRY)
    recorder = record_events(parent)
    return parent, child_proactor, recorder


async def _generate_one_by_one(
    child: Proactor, first: int, count: int
) -> list[Result[str, StoreError]]:
    """Each event committed (or refused) before the next: the overflow is exact."""
    return [await child.generate_event(Counted(n=n)) for n in range(first, first + count)]


async def _pending_counted(child: Proactor) -> list[int]:
    events = await child.query_events(Counted.type_name, pending=True, limit=1000)
    return [Counted.model_validate_json(e.payload).n for e in events]


def _store_problem(kind: str) -> Any:
    return lambda e: e.source == f"store: store.{kind}"


async def _deliver_backlog(
    parent: Proactor, child: Proactor, recorder: EventRecorder, n: int
) -> None:
    """Run the parent until the child's store is empty and ``n`` events reached the actor."""
    with child.listener("event.acked") as acked, parent.listener("message.dispatched") as seen:
        await wait_until(lambda: child.store.pending_count == 0, acked, TIMEOUT)
        await wait_until(lambda: len(recorder.events) >= n, seen, TIMEOUT)


async def test_drop_oldest_keeps_the_newest_events_and_reports_every_drop(
    mosquitto: Mosquitto,
) -> None:
    parent, child, recorder = _gateways(mosquitto, "drop_oldest")
    async with running(child):
        with child.listener("problem") as problems:
            results = await _generate_one_by_one(child, 0, GENERATED)
            reported = await problems.wait_for(_store_problem("dropped"), TIMEOUT)
        await child.store.flush()
        assert all(isinstance(r, Ok) for r in results)  # accepted, some dropped later
        kept = await _pending_counted(child)
        # The newest events are what remains, as many as the bound holds.
        assert kept == list(range(GENERATED - len(kept), GENERATED))
        assert len(kept) >= 5
        assert child.store.pending_bytes <= MAX_BYTES
        # Every drop is counted: whatever was committed and is no longer there was dropped
        # (the problem events the drops caused are events in this store too).
        stats = child.store.stats
        committed = child.stats.events_generated + child.stats.events_rejected
        assert stats.dropped == committed - child.store.pending_count
        assert stats.dropped >= GENERATED - len(kept)
        assert stats.refused == 0
        # ...and reported: a problem comm event, and the recent problems of the status.
        assert "max_bytes=1000" in reported.data["details"]
        assert any(p.summary == "store: store.dropped" for p in child.problems.recent)
        assert child.state == "running"
        assert not child.link("parent").active  # nobody there
        async with running(parent):
            await _deliver_backlog(parent, child, recorder, len(kept))
            # The gateway goes on: new events flow straight through.
            assert all(r.is_ok() for r in await _generate_one_by_one(child, GENERATED, 5))
            await _deliver_backlog(parent, child, recorder, len(kept) + 5)
    assert [e.n for e in recorder.events] == [*kept, *range(GENERATED, GENERATED + 5)]


async def test_refuse_new_keeps_the_oldest_events_and_reports_every_refusal(
    mosquitto: Mosquitto,
) -> None:
    parent, child, recorder = _gateways(mosquitto, "refuse_new")
    async with running(child):
        with child.listener("problem") as problems:
            results = await _generate_one_by_one(child, 0, GENERATED)
            reported = await problems.wait_for(_store_problem("refused"), TIMEOUT)
        await child.store.flush()
        accepted = [n for n, r in enumerate(results) if isinstance(r, Ok)]
        refused = [n for n, r in enumerate(results) if isinstance(r, Err)]
        assert accepted == list(range(len(accepted)))
        assert len(accepted) >= 5
        assert refused == list(range(len(accepted), GENERATED))
        assert all(isinstance(r.err_value, StoreFullError) for r in results if isinstance(r, Err))
        assert await _pending_counted(child) == accepted
        # Every refusal is counted (the problem events about them were refused as well).
        stats = child.store.stats
        assert stats.refused >= len(refused)
        assert stats.refused == child.stats.events_rejected
        assert stats.dropped == 0
        assert "refuse_new" in reported.data["details"]
        assert any(p.summary == "store: store.refused" for p in child.problems.recent)
        assert child.state == "running"
        async with running(parent):
            await _deliver_backlog(parent, child, recorder, len(accepted))
            # Drained, so new events are accepted again.
            more = await _generate_one_by_one(child, GENERATED, 5)
            assert all(r.is_ok() for r in more)
            await _deliver_backlog(parent, child, recorder, len(accepted) + 5)
    assert [e.n for e in recorder.events] == [*accepted, *range(GENERATED, GENERATED + 5)]


async def test_a_full_store_goes_quiet_once_nothing_new_is_generated(
    mosquitto: Mosquitto,
) -> None:
    # problem_report_interval_seconds=0 is a valid setting: report every problem.
    _, child, _ = _gateways(mosquitto, "drop_oldest", problem_report_interval_seconds=0.0)

    def store_problem(event: CommEvent) -> bool:
        return event.source.startswith("store: ")

    async with running(child):
        with child.listener("problem", store_problem) as problems:
            await _generate_one_by_one(child, 0, GENERATED)
            await child.store.flush()
            problems.clear()
            # Nothing is generated any more: no more drops may happen, nothing to report.
            with pytest.raises(TimeoutError):
                await problems.get(1.0)
        kept = await _pending_counted(child)
        assert kept
        assert kept == list(range(GENERATED - len(kept), GENERATED))
