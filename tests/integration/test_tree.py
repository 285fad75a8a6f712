"""Three gateways over two brokers: atn <- scada1 <- scada2, while links go up and down.

scada2 and scada1 talk on broker B, scada1 and atn on broker A. Events generated on scada2
are stored by scada1 (archived and queued upstream in one transaction), acked, and
forwarded to atn. Both brokers are killed and restarted at different moments, with the
outages overlapping, while scada2 generates; atn must end with every event exactly once,
in order, from scada2.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest
from result import Ok, Result

from gwproactor import BrokerSettings, LinkSettings, Proactor, ProactorSettings, StoreError
from gwproactor.config import LinkRole
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
    Counted,
    is_state,
    record_events,
    running,
    wait_active,
    wait_until,
)

if TYPE_CHECKING:
    from tests.support.fixtures import MosquittoFactory

pytestmark = [pytest.mark.broker, pytest.mark.slow]

log = logging.getLogger(__name__)


TOTAL = 2000
CHUNK = 100
TIMEOUT = 20.0
DRAIN_TIMEOUT = 60.0


def _link(peer: str, role: LinkRole, broker: Mosquitto) -> LinkSettings:
    broker_settings = BrokerSettings(
        port=broker.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5
    )
    return LinkSettings(peer=peer, role=role, broker=broker_settings)


def _tree(broker_a: Mosquitto, broker_b: Mosquitto) -> tuple[Proactor, Proactor, Proactor]:
    atn = ProactorSettings(name="atn", links={"scada1": _link("scada1", "downstream", broker_a)})
    scada1 = ProactorSettings(
        name="scada1",
        links={
            "atn": _link("atn", "upstream", broker_a),
            "scada2": _link("scada2", "downstream", broker_b),
        },
    )
    scada2 = ProactorSettings(
        name="scada2", links={"scada1": _link("scada1", "upstream", broker_b)}
    )
    return Proactor(atn, REGISTRY), Proactor(scada1, REGISTRY), Proactor(scada2, REGISTRY)


async def _drained(proactor: Proactor) -> None:
    """Return once ``proactor`` holds no event waiting for its upstream's ack."""
    with proactor.listener("event.acked") as acked:
        await wait_until(lambda: proactor.store.pending_count == 0, acked, TIMEOUT)


async def test_events_cross_two_brokers_exactly_once_while_both_go_up_and_down(
    mosquitto_factory: MosquittoFactory,
) -> None:
    broker_a = await mosquitto_factory.astart(name="broker-a")
    broker_b = await mosquitto_factory.astart(name="broker-b")
    atn, scada1, scada2 = _tree(broker_a, broker_b)
    recorder = record_events(atn)
    # What happens to the brokers when scada2 has generated this many events.
    plan: dict[int, Callable[[], Awaitable[object]]] = {
        400: broker_a.akill,  # scada1 -> atn down: scada1 stores and holds
        800: broker_b.akill,  # scada2 -> scada1 down too: scada2 holds
        1200: broker_a.astart,  # scada1 re-uploads to atn while scada2 is still cut off
        1600: broker_b.astart,  # scada2 re-uploads to scada1, which forwards at once
    }
    async with running(atn, scada1, scada2):
        await wait_active(atn, "scada1")
        await wait_active(scada1, "atn")
        await wait_active(scada1, "scada2")
        await wait_active(scada2, "scada1")
        with (
            scada1.listener("link.state") as s1_states,
            scada2.listener("link.state") as s2_states,
            atn.listener("event.received") as arrived,
        ):
            results: list[Result[str, StoreError]] = []
            restarted = 0.0
            for first in range(0, TOTAL, CHUNK):
                if first in plan:
                    await plan[first]()
                    if first == 800:
                        # Both outages are under way and noticed before generating on.
                        await s1_states.wait_for(is_state("connecting", "atn"), TIMEOUT)
                        await s2_states.wait_for(is_state("connecting", "scada1"), TIMEOUT)
                    if first == 1600:
                        restarted = time.monotonic()
                results += await asyncio.gather(
                    *(scada2.generate_event(Counted(n=n)) for n in range(first, first + CHUNK))
                )
            await wait_until(lambda: len(recorder.events) >= TOTAL, arrived, DRAIN_TIMEOUT)
            drained_in = time.monotonic() - restarted
        await _drained(scada2)
        await _drained(scada1)
        forwarded = await scada1.query_events(Counted.type_name, pending=False, limit=10_000)
    log.info(
        "tree: %d events reached atn %.2f s after the last broker restart; duplicates "
        "de-duplicated: %d at scada1, %d at atn",
        TOTAL,
        drained_in,
        scada1.stats.events_duplicate,
        atn.stats.events_duplicate,
    )
    assert all(isinstance(r, Ok) for r in results)
    # All of them, once each, in order, from scada2.
    assert [(e.n, e.src) for e in recorder.events] == [(n, "scada2") for n in range(TOTAL)]
    # Each of scada1's links really went down and came back.
    s1_links = {(e.source, e.data["new"]) for e in s1_states.history}
    assert {("atn", "connecting"), ("atn", "active")} <= s1_links
    assert {("scada2", "connecting"), ("scada2", "active")} <= s1_links
    # scada1 archived each event once, in order, before forwarding it.
    assert [Counted.model_validate_json(e.payload).n for e in forwarded] == list(range(TOTAL))
    assert {e.src for e in forwarded} == {"scada2"}
