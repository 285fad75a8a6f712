"""``gwproactor run``'s progress bar for a re-upload backlog, on a real broker and store."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console

from gwproactor import BrokerSettings, Proactor
from gwproactor.cli._progress import BacklogProgress
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
    Counted,
    pair_settings,
    record_events,
    running,
    wait_active,
    wait_until,
)

pytestmark = pytest.mark.broker

BACKLOG = 1500
TIMEOUT = 20.0


async def test_bar_follows_the_backlog_and_reports_the_rate(mosquitto: Mosquitto) -> None:
    broker = BrokerSettings(port=mosquitto.port, reconnect_min_seconds=0.05)
    parent_settings, child_settings = pair_settings(broker)
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    recorder = record_events(parent)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, highlight=False, color_system=None)
    bar = BacklogProgress(child, console, threshold=100)
    async with running(child):
        # The parent is not there yet: the backlog builds up, and no bar is shown while
        # the link is not active.
        results = await asyncio.gather(
            *(child.generate_event(Counted(n=n)) for n in range(BACKLOG))
        )
        assert all(r.is_ok() for r in results)
        bar.update()
        assert not bar.showing()
        async with running(parent):
            await wait_active(child, "parent")
            bar.update()
            assert bar.showing()
            shown_during = 0
            with child.listener("event.acked") as acked:

                def drained() -> bool:
                    nonlocal shown_during
                    bar.update()
                    shown_during += bar.showing()
                    return child.store.pending_count == 0

                await wait_until(drained, acked, TIMEOUT)
            bar.update()
    assert not bar.showing()
    text = out.getvalue()
    assert "re-uploading events" in text
    assert f"re-uploaded {BACKLOG:,} events in" in text
    assert shown_during > 0
    assert sorted(e.n for e in recorder.events) == list(range(BACKLOG))
