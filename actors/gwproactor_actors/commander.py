"""An actor on the loop that commands a relay in a child gateway on a schedule."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

from result import Ok, Result

from gwproactor import Actor, ActorSettings, Message, Payload, ServicesInterface
from gwproactor_actors.messages import RelaySet


class RelayCommander(Actor):
    """Every ``period_seconds`` sends ``gw.relay.set`` (alternating open/closed) over the
    link ``link`` to the actor ``relay`` of that link's peer. Options: link, relay,
    period_seconds (default 3.0)."""

    payload_types: ClassVar[tuple[type[Payload], ...]] = (RelaySet,)

    def __init__(
        self, name: str, services: ServicesInterface, settings: ActorSettings | None = None
    ) -> None:
        super().__init__(name, services, settings)
        options = self.actor_settings.options
        self.link = str(options.get("link", "child"))
        self.relay = str(options.get("relay", "relay1"))
        self.period_seconds = float(options.get("period_seconds", 3.0))
        self.sent = 0
        self.refused = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"actor[{self.name}].schedule"
        )

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        super().stop()

    async def join(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await super().join()

    async def _run(self) -> None:
        closed = False
        while True:
            await asyncio.sleep(self.period_seconds)  # the schedule itself, not a sync
            closed = not closed
            result = self.services.send_to_peer(
                self.link, RelaySet(closed=closed), actor=self.relay, ack_required=True
            )
            if result.is_ok():
                self.sent += 1
            else:
                self.refused += 1  # link down: the next period tries again

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        return Ok(None)
