"""What ``generate_event`` returns: a future that can also be asked how it ended."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from result import Err, Result

from gwproactor.errors import StateError, StoreError

__all__ = ("EventFuture", "outcome")

_T = TypeVar("_T")


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


def outcome(future: asyncio.Future[Result[_T, StoreError]]) -> Result[_T, StoreError] | None:
    """For a done-callback: the result of the done ``future``, None if it was cancelled.
    A future that ended with an exception (a store op that failed outright rather than
    answering Err) gives ``Err(StoreError)`` with the exception chained, so the callback
    takes its usual error path instead of raising into the loop ("Exception in
    callback", a traceback the operator cannot act on)."""
    if future.cancelled():
        return None
    error = future.exception()
    if error is None:
        return future.result()
    if isinstance(error, StoreError):
        return Err(error)
    wrapped = StoreError(f"{type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return Err(wrapped)
