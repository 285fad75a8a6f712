"""Received events are bounded like the receive queue: a link whose events outrun the
store's commits stops reading (its transport pauses) and resumes once the commits caught up.
Nothing is lost: every event is stored, acked once and handed to the actor once."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from typing import Any

from rich.console import Console

from gwproactor import BrokerSettings, Proactor
from gwproactor.cli._status import render_status
from gwproactor.mqtt import MemoryBroker
from gwproactor.web._page import render_page
from gwproactor.wire.names import topic_for
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    is_state,
    memory_factory,
    pair_settings,
    record_events,
    running,
)

FLOOD = 2_000
BOUND = 50


def _event(n: int) -> tuple[str, bytes]:
    header = {
        "src": "child",
        "dst": "parent",
        "message_type": "test.counted",
        "message_id": f"flood-{n}",
        "ack_required": True,
    }
    payload = {"src": "child", "time_ns": 1_700_000_000 + n, "n": n}
    body = json.dumps({"header": header, "payload": payload}).encode()
    return topic_for("child", "parent", "test.counted"), body


def _acked_ids(published: list[tuple[str, bytes]]) -> Iterator[str]:
    for _, body in published:
        try:
            payload: dict[str, Any] = json.loads(body).get("payload", {})
        except ValueError:
            continue
        if isinstance(payload.get("ids"), list):
            yield from payload["ids"]
        elif isinstance(payload.get("ack_message_id"), str):
            yield payload["ack_message_id"]


class _GatedCommits:
    """The store's commits of received events held until the test opens the gate (each
    one submitted, in order, once it opens); ``reached`` is set at the ``bound``-th."""

    def __init__(self, proactor: Proactor, bound: int) -> None:
        self.gate = asyncio.Event()
        self.reached = asyncio.Event()
        self.calls = 0
        self._tasks: set[asyncio.Task[None]] = set()
        store = proactor.store
        real = store.record_received
        loop = asyncio.get_running_loop()

        def gated(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
            out: asyncio.Future[Any] = loop.create_future()

            async def later() -> None:
                await self.gate.wait()
                out.set_result(await real(*args, **kwargs))

            task = loop.create_task(later())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self.calls += 1
            if self.calls == bound:
                self.reached.set()
            return out

        store.record_received = gated  # type: ignore[method-assign]


async def test_a_flood_of_received_events_pauses_the_link_while_commits_lag() -> None:
    """The store commits nothing until the gate opens: the link reads ``BOUND`` events and
    stops (the rest wait in its transport, as they would in a socket); once commits flow,
    reading resumes at the low-water mark, pausing again at the bound, until all are in."""
    broker = MemoryBroker()
    parent_settings, _ = pair_settings(BrokerSettings())
    parent_settings = parent_settings.model_copy(update={"max_received_uncommitted": BOUND})
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    recorder = record_events(parent)
    with parent.listener("link.state") as states:
        async with running(parent):
            await states.wait_for(is_state("awaiting_peer", "child"), TIMEOUT)
            gate = _GatedCommits(parent, BOUND)
            with parent.listener("event.received", history=0) as received:
                for n in range(FLOOD):
                    broker.publish(*_event(n))
                await asyncio.wait_for(gate.reached.wait(), TIMEOUT)
                # The deliveries the broker scheduled have all run one turn later: the link
                # took the bound's worth and stopped reading.
                await asyncio.sleep(0)
                assert parent.events.received_held
                assert gate.calls == BOUND
                assert parent.events.received_waiting == BOUND
                assert parent.stats.received_pauses == 1
                status = parent.status()
                assert status["received_events"]["paused"] is True
                page = render_page(status, 2.0)
                assert "paused: received events awaiting their commit" in page
                assert f"{BOUND} / {BOUND} received events awaiting commit" in page
                console = Console(file=io.StringIO(), width=200, color_system=None)
                console.print(render_status(status))
                text = console.file.getvalue()  # type: ignore[attr-defined]
                assert f"{BOUND} / {BOUND} (paused: awaiting commit)" in text
                gate.gate.set()
                for _ in range(FLOOD):
                    await received.get(TIMEOUT)
            await parent.store.flush()
            assert parent.events.received_high_water <= BOUND
            assert parent.stats.received_pauses >= FLOOD // BOUND - 1
            assert parent.status()["received_events"]["paused"] is False
            assert parent.events.received_waiting == 0
            assert parent.store.archive_count == FLOOD
    # Stored, acked and handed over once each, in order.
    assert sorted(_acked_ids(broker.published)) == sorted(f"flood-{n}" for n in range(FLOOD))
    assert [e.n for e in recorder.events] == list(range(FLOOD))
    assert parent.stats.events_duplicate == 0
