"""Pending events with no upstream link to take them are reported at start and in /status."""

from __future__ import annotations

from gwproactor import BrokerSettings, Proactor, ProactorSettings
from gwproactor.mqtt import MemoryBroker
from tests.helpers import REGISTRY, Counted, memory_factory, pair_settings, running


async def test_pending_events_without_an_upstream_link_are_reported() -> None:
    broker = MemoryBroker()
    _, child_settings = pair_settings(BrokerSettings())
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    async with running(child):  # no parent: the events stay pending
        for n in range(7):
            (await child.generate_event(Counted(n=n))).unwrap()
    assert child.store.pending_count == 7
    # The config loses its upstream link; the same gateway (same store) starts again.
    alone = Proactor(
        ProactorSettings(name=child_settings.name, paths=child_settings.paths),
        REGISTRY,
        transport_factory=memory_factory(broker),
    )
    with alone.listener("problem") as problems:
        async with running(alone):
            status = alone.status()
    assert [e.source for e in problems.history] == [
        "events: 7 pending events have no upstream link"
    ]
    assert status["store"]["stranded_pending"] == 7
    assert any("7 pending events have no upstream link" in w for w in status["warnings"])
