"""The uploader keeps its backlog read task and cancels it when the link stops being active
(at a gateway's stop, too): no task of it outlives the link and the store."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

from gwproactor.events import Uploader
from gwproactor.links import Link
from gwproactor.store import EventStore, StoredEvent
from tests.helpers import TIMEOUT


class _SlowStore:
    """A store whose backlog read never finishes (until cancelled)."""

    pending_count = 0

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def backlog(self, after_seq: int, limit: int) -> list[StoredEvent]:
        self.reading.set()
        await self.never
        return []


async def test_a_backlog_read_in_flight_is_cancelled_when_the_link_goes_inactive() -> None:
    store = _SlowStore()
    link = SimpleNamespace(name="up", inflight_limit=0)
    uploader = Uploader(cast(EventStore, store), cast(Link, link), window=10, read_batch=100)
    uploader.link_active()  # nothing queued: it reads the backlog
    async with asyncio.timeout(TIMEOUT):
        await store.reading.wait()
    (read,) = [t for t in asyncio.all_tasks() if t.get_name() == "uploader[up].read"]
    try:
        uploader.link_inactive()
        await asyncio.wait({read}, timeout=TIMEOUT)
        assert read.cancelled()
    finally:
        store.never.cancel()
        await asyncio.wait({read}, timeout=TIMEOUT)
