"""A progress bar for long work in ``gwproactor run`` on a terminal: draining a backlog of
stored events to the upstream peer after an outage (thousands of events can take a while
on a slow uplink). Without a terminal the same progress goes to the log instead, every
``reupload_log_every`` acks while a backlog of ``reupload_log_threshold`` or more drains.
"""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from gwproactor.runtime.proactor import Proactor

__all__ = ("BacklogProgress", "show_backlog_progress")


class BacklogProgress:
    """Shows a bar while the upstream link is active and at least ``threshold`` events
    wait to be uploaded; prints one line with the count and the rate when the backlog is
    empty. Call :meth:`update` periodically (it only reads counters)."""

    def __init__(self, proactor: Proactor, console: Console, threshold: int = 500) -> None:
        self.proactor = proactor
        self.console = console
        self.threshold = threshold
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._acked_at_start = 0
        self._started = 0.0
        self._total = 0

    def showing(self) -> bool:
        """Whether the bar is on screen."""
        return self._progress is not None

    def update(self) -> None:
        uploader = self.proactor.events.uploader
        link = self.proactor.upstream_link
        if uploader is None or link is None:
            return
        pending = self.proactor.store.pending_count
        acked = uploader.stats.acked
        if self._progress is None:
            if pending >= self.threshold and link.active:
                self._begin(acked, pending)
            return
        done = acked - self._acked_at_start
        self._total = max(self._total, done + pending)
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=self._total)
        if pending == 0:
            self._finish(done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _begin(self, acked: int, pending: int) -> None:
        self._acked_at_start = acked
        self._total = pending
        self._started = time.monotonic()
        self._progress = Progress(
            TextColumn("re-uploading events"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task = self._progress.add_task("re-upload", total=pending)
        self._progress.start()

    def _finish(self, done: int) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self.close()
        self.console.print(
            f"re-uploaded {done:,} events in {elapsed:.1f} s ({done / elapsed:,.0f} events/s)"
        )


async def show_backlog_progress(proactor: Proactor, console: Console, period: float = 0.5) -> None:
    """Refresh a :class:`BacklogProgress` every ``period`` seconds until cancelled."""
    bar = BacklogProgress(proactor, console)
    try:
        while True:
            bar.update()
            await asyncio.sleep(period)  # the display's refresh period, not a synchronisation
    finally:
        bar.close()
