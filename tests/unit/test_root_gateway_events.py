"""A gateway without an upstream link (the root of a tree, e.g. the cloud side) counts,
refuses and announces the events it generates as a gateway with an upstream link does.

Its events are archived instead of queued for upload; before, ``events_generated`` (and
``gwproactor_events_generated_total``) stayed 0 there, an archive that refused an event
was not counted in ``events_rejected``, and no ``event.stored`` comm event came.
"""

from __future__ import annotations

import asyncio

from result import Err, Ok

from gwproactor import BrokerSettings, Proactor, ProactorSettings
from gwproactor.errors import StoreFullError
from gwproactor.mqtt import MemoryBroker
from gwproactor.store import StoreSettings
from gwproactor.web import render_metrics
from tests.helpers import REGISTRY, Counted, memory_factory, pair_settings, running

EVENTS = 5


def _metric(proactor: Proactor, name: str) -> float:
    """The value of the unlabelled sample ``name`` on the gateway's metrics page."""
    for line in render_metrics(proactor.status()).splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the exposition")


async def test_root_gateway_counts_and_announces_its_events() -> None:
    root = Proactor(ProactorSettings(name="root"), REGISTRY)
    assert root.events.uploader is None  # no upstream link: events are archived
    async with running(root):
        with root.listener("event.stored") as stored:
            ids = [(await root.generate_event(Counted(n=n))).unwrap() for n in range(EVENTS)]
            # Announced before generate_event resolves, as a pending event is.
            seen = stored.history
        assert root.stats.events_generated == EVENTS
        assert root.stats.events_rejected == 0
        assert root.status()["stats"]["events_generated"] == EVENTS
        assert _metric(root, "gwproactor_events_generated_total") == EVENTS
        assert _metric(root, "gwproactor_events_rejected_total") == 0
        archived = await root.query_events(limit=100)
    assert [(e.source, e.data["event_id"], e.data["src"]) for e in seen] == [
        ("test.counted", event_id, "root") for event_id in ids
    ]
    # The seq in the comm event is the archived row's, as for a pending event.
    assert [e.data["seq"] for e in seen] == [e.seq for e in archived]
    assert all(not e.pending for e in archived)


async def test_root_gateway_counts_a_refused_event_as_rejected() -> None:
    # An event larger than the whole archive is refused (not stored, not announced).
    settings = ProactorSettings(name="root", store=StoreSettings(archive_max_bytes=200))
    root = Proactor(settings, REGISTRY)
    async with running(root):
        with root.listener("event.stored") as stored:
            assert isinstance(await root.generate_event(Counted(n=1)), Ok)
            big = await root.generate_event(Counted(n=10**300))
            assert isinstance(big, Err)
            assert isinstance(big.err_value, StoreFullError)
            # From a worker thread too: it goes through the same path.
            threaded = await asyncio.to_thread(root.generate_event_threadsafe, Counted(n=10**300))
            assert isinstance(threaded, Err)
            assert [e.data["event_id"] for e in stored.history] == [
                e.event_id for e in await root.query_events()
            ]
        assert (root.stats.events_generated, root.stats.events_rejected) == (1, 2)
        assert root.store.stats.refused == 2
        assert _metric(root, "gwproactor_store_events_refused_total") == 2
        assert _metric(root, "gwproactor_events_rejected_total") == 2
        assert root.store.archive_count == 1  # the archive was not emptied for it


async def test_worker_thread_refusal_is_counted_with_an_upstream_link() -> None:
    # The reference path: a gateway with an upstream link whose store refuses an event
    # generated from a worker thread counts it as the loop's generate_event does.
    _, child_settings = pair_settings(BrokerSettings())
    child_settings = child_settings.model_copy(
        update={"store": StoreSettings(max_bytes=200, archive_max_bytes=200)}
    )
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(MemoryBroker()))
    async with running(child):
        on_loop = await child.generate_event(Counted(n=10**300))
        threaded = await asyncio.to_thread(child.generate_event_threadsafe, Counted(n=10**300))
        assert isinstance(on_loop, Err)
        assert isinstance(threaded, Err)
        assert child.stats.events_rejected == 2
