"""An actor whose worker thread stalls while a file exists (for watchdog tests of the daemon,
which runs in another process: the test creates and removes the file)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from result import Ok, Result

from gwproactor import (
    ActorSettings,
    Message,
    ServicesInterface,
    SyncAsyncInteractionThread,
    SyncThreadActor,
)


class StallingThread(SyncAsyncInteractionThread):
    def __init__(self, name: str, stall_file: Path, pat_timeout: float) -> None:
        super().__init__(name, iterate_seconds=0.05, pat_timeout_seconds=pat_timeout)
        self.stall_file = stall_file

    def _ext_iterate(self) -> None:
        while self.stall_file.exists() and not self.stop_event.is_set():
            time.sleep(0.05)  # the stall under test: a blocking call that does not return


class StallableActor(SyncThreadActor):
    """Options: ``stall_file`` (path), ``pat_timeout_seconds``."""

    def __init__(
        self, name: str, services: ServicesInterface, settings: ActorSettings | None = None
    ) -> None:
        options = settings.options if settings is not None else {}
        self.stall_file = Path(str(options["stall_file"]))
        self.pat_timeout = float(options.get("pat_timeout_seconds", 0.5))
        super().__init__(name, services, settings=settings)

    def make_thread(self) -> SyncAsyncInteractionThread:
        return StallingThread(f"{self.name}.io", self.stall_file, self.pat_timeout)

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        return Ok(None)
