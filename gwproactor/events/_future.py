"""What ``generate_event`` returns: a future that can also be asked how it ended."""

from __future__ import annotations

import asyncio

from result import Result

from gwproactor.errors import StateError, StoreError

__all__ = ("EventFuture",)


class EventFuture(asyncio.Future[Result[str, StoreError]]):
    """Resolves to ``Ok(event_id)`` once the event is committed, or ``Err`` if the store
    refused it. Await it (the native form), or, once it is done, ask :meth:`is_ok` /
    :meth:`is_err` directly (the reference's form, where ``generate_event`` returned a
    ``Result``). Asking before it is done raises StateError: the event is not durable yet,
    so neither answer would be true. Loop-only, like any future."""

    def is_ok(self) -> bool:
        return self._settled().is_ok()

    def is_err(self) -> bool:
        return self._settled().is_err()

    def _settled(self) -> Result[str, StoreError]:
        if not self.done():
            raise StateError(
                "the event is not committed yet: await generate_event(...) before asking "
                "is_ok()/is_err()"
            )
        return self.result()
