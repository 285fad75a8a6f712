"""An actor for receiver processes: records every ``Counted`` event handed to it in a file.

Configured as ``class = "tests.procs.recorder:DeliveryRecorder"`` with ``handles =
["test.counted"]`` and options ``path`` (the record file) and ``work_seconds`` (blocking
work per event, to make the actor slower than its input so that a backlog builds up in the
receive queue). Each hand-over appends one line with a single ``write`` (so a SIGKILL never
leaves half a line):

    got <n> <event_id> <0|1: is_redelivery>

and, when the event is not one it already handled (its *effect*, done exactly once: an
event handed over again after a crash is checked against the ids in the file):

    effect <n> <event_id>
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

from result import Ok, Result

from gwproactor import Actor, ActorSettings, Message, Payload, ServicesInterface
from tests.helpers import Counted


class DeliveryRecorder(Actor):
    payload_types: ClassVar[tuple[type[Payload], ...]] = (Counted,)

    def __init__(
        self, name: str, services: ServicesInterface, settings: ActorSettings | None = None
    ) -> None:
        super().__init__(name, services, settings)
        options = self.actor_settings.options
        self.path = Path(str(options["path"]))
        self.work_seconds = float(options.get("work_seconds", 0.0))
        self._fd = -1
        self._done: set[str] | None = None  # ids with an effect line, read on first need

    def start(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def stop(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().stop()

    def _already_done(self, event_id: str) -> bool:
        if self._done is None:
            self._done = set()
            if self.path.exists():
                for line in self.path.read_text().splitlines():
                    word, _, rest = line.partition(" ")
                    if word == "effect":
                        self._done.add(rest.split()[1])
        return event_id in self._done

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        event = message.payload
        if not isinstance(event, Counted):
            return Ok(None)
        if self.work_seconds:
            time.sleep(self.work_seconds)  # the actor's blocking work, on purpose
        event_id = message.header.message_id
        again = self.services.is_redelivery(message)
        lines = f"got {event.n} {event_id} {int(again)}\n"
        if not (again and self._already_done(event_id)):
            lines += f"effect {event.n} {event_id}\n"
            if self._done is not None:
                self._done.add(event_id)
        os.write(self._fd, lines.encode())
        return Ok(None)
