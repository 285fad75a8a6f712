"""Remote admin commands over an admin link: status, log levels, actor restarts.

A gateway with a link of role ``admin`` accepts these commands from that link's peer only
(a command from any other peer is rejected, counted and reported). Every command is acked
at the link level when it asks for an ack, logged at the lifecycle category, and answered
with an :class:`AdminResult` (and a status request with an :class:`AdminStatusReply`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal

from pydantic import Field
from result import Err, Ok, Result

from gwproactor.actor.communicator import Communicator, ServicesInterface
from gwproactor.wire.message import Message, Payload

__all__ = (
    "ADMIN_ACTOR",
    "AdminCommander",
    "AdminResult",
    "AdminRestartActor",
    "AdminSetLogLevel",
    "AdminStatusReply",
    "AdminStatusRequest",
)

ADMIN_ACTOR = "admin"

Category = Literal["general", "message_summary", "lifecycle", "comm_event"]


class AdminStatusRequest(Payload):
    type_name: ClassVar[str] = "gw.admin.status.request"


class AdminStatusReply(Payload):
    type_name: ClassVar[str] = "gw.admin.status.reply"
    command_id: str
    status: dict[str, Any]


class AdminSetLogLevel(Payload):
    type_name: ClassVar[str] = "gw.admin.log_level.set"
    category: Category
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class AdminRestartActor(Payload):
    type_name: ClassVar[str] = "gw.admin.actor.restart"
    actor: str


class AdminResult(Payload):
    type_name: ClassVar[str] = "gw.admin.result"
    command_id: str
    command: str
    ok: bool
    detail: str = ""
    levels: dict[str, str] = Field(default_factory=dict)


COMMANDS: tuple[type[Payload], ...] = (AdminStatusRequest, AdminSetLogLevel, AdminRestartActor)


class AdminCommander(Communicator):
    """The built-in communicator that carries out admin commands. Loop-only."""

    payload_types: ClassVar[tuple[type[Payload], ...]] = (
        *COMMANDS,
        AdminStatusReply,
        AdminResult,
    )

    def __init__(
        self,
        services: ServicesInterface,
        link_name: str,
        *,
        admin_peer: str,
        status: Callable[[], dict[str, Any]],
        restart_actor: Callable[[str], Awaitable[Result[None, Exception]]],
    ) -> None:
        """``status`` gives the gateway's snapshot, ``restart_actor`` restarts a configured
        actor; both are handed in by the runtime (this actor never sees the Proactor)."""
        super().__init__(ADMIN_ACTOR, services)
        self.link_name = link_name
        self.admin_peer = admin_peer
        self._status = status
        self._restart_actor = restart_actor
        self.executed = 0
        self.rejected = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        header = message.header
        if header.src != self.admin_peer:
            self.rejected += 1
            self.services.report_problem(
                "admin command refused",
                f"{header.message_type} from {header.src!r}; only {self.admin_peer!r} may",
                key="admin:refused",
            )
            return Ok(None)
        payload = message.payload
        self.log.info("admin: %s from %s (%s)", header.message_type, header.src, header.message_id)
        lifecycle = self.services.logger.lifecycle_logger
        lifecycle.info("admin command %s from %s", header.message_type, header.src)
        self.executed += 1
        if isinstance(payload, AdminStatusRequest):
            self._reply(AdminStatusReply(command_id=header.message_id, status=self._status()))
            return Ok(None)
        if isinstance(payload, AdminSetLogLevel):
            self.services.logger.set_category_level(payload.category, payload.level)
            self._result(header.message_id, header.message_type, True, "", with_levels=True)
            return Ok(None)
        if isinstance(payload, AdminRestartActor):
            # Kept until done: an unreferenced task may be collected mid-restart.
            task = asyncio.get_running_loop().create_task(
                self._restart(header.message_id, header.message_type, payload.actor),
                name=f"admin.restart[{payload.actor}]",
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return Ok(None)
        return Err(ValueError(f"not an admin command: {header.message_type}"))

    async def _restart(self, command_id: str, command: str, actor: str) -> None:
        result = await self._restart_actor(actor)
        if isinstance(result, Ok):
            self._result(command_id, command, True, f"{actor} restarted")
        else:
            self._result(command_id, command, False, str(result.err_value))

    def _result(
        self, command_id: str, command: str, ok: bool, detail: str, *, with_levels: bool = False
    ) -> None:
        levels = self.services.logger.levels() if with_levels else {}
        self._reply(
            AdminResult(command_id=command_id, command=command, ok=ok, detail=detail, levels=levels)
        )

    def _reply(self, payload: Payload) -> None:
        result = self.services.send_to_peer(self.link_name, payload)
        if result.is_err():
            self.log.warning("admin reply not sent: %s", result)
