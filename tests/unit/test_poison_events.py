"""A stored event that upstream can never accept moves to the dead letters; the rest flow."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from gwproactor import BrokerSettings, Proactor
from gwproactor.mqtt import MemoryBroker
from gwproactor.store import StoreSettings
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    memory_factory,
    pair_settings,
    record_events,
    running,
    wait_until,
)


def _damage(store_file: Path, event_id: str) -> None:
    """Flip three bytes inside one stored payload (sqlite itself stays perfectly healthy)."""
    with contextlib.closing(sqlite3.connect(store_file)) as conn:
        (payload,) = conn.execute(
            "SELECT payload FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
        damaged = payload[:5] + bytes(b ^ 0xFF for b in payload[5:8]) + payload[8:]
        conn.execute("UPDATE events SET payload = ? WHERE event_id = ?", (damaged, event_id))
        conn.commit()


async def test_a_poison_event_is_dead_lettered_after_max_attempts_and_the_backlog_flows() -> None:
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings(), ack_timeout_seconds=0.3)
    child_settings = child_settings.model_copy(
        update={"store": StoreSettings(max_delivery_attempts=3)}
    )
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    recorder = record_events(parent)
    async with running(child):
        ids = [(await child.generate_event(Counted(n=n))).unwrap() for n in range(20)]

        await child.store.flush()
        await asyncio.to_thread(_damage, child.store.path, ids[5])
        with child.listener(("event.dead_letter", "problem", "event.acked")) as seen:
            async with running(parent):
                await wait_until(lambda: child.store.pending_count == 0, seen, TIMEOUT)
        dead = [e for e in seen.history if e.name == "event.dead_letter"]
    assert [e.data["event_id"] for e in dead] == [ids[5]]
    assert dead[0].data["attempts"] == 3
    assert [e.n for e in recorder.events] == [n for n in range(20) if n != 5]
    assert child.store.dead_letter_count == 1
    assert child.stats.events_dead_lettered == 1
    assert child.status()["store"]["dead_letter_count"] == 1
    problems = [e for e in seen.history if e.name == "problem"]
    assert any("dead letters" in e.source for e in problems)
