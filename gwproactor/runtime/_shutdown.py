"""The stopping sequence of a :class:`~gwproactor.runtime.proactor.Proactor`, in one place.

The exact reverse of the start order: the external watchdog hears STOPPING first (a slow
stop must not look like a hang), then the web server goes, input is paused, the actors get
what the receive queue already accepted, the actors and their threads stop, then the
dispatcher, the links and the store. Every join is bounded by ``stop_timeout_seconds`` and
every part gets its stop even when an earlier one fails: errors are collected and returned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from gwproactor.actor.communicator import Runnable
from gwproactor.errors import StateError, StoreError

if TYPE_CHECKING:
    from gwproactor.runtime.proactor import Proactor

__all__ = ("stop_parts",)


async def stop_parts(
    proactor: Proactor, runnables: list[Runnable], log: logging.Logger
) -> list[BaseException]:
    """Stop every part of a running (or partly started) proactor; the errors met."""
    proactor.patter.stopping()
    await proactor.patter.stop()
    proactor.patter.notifier.close()
    proactor.watchdog.stop()
    errors: list[BaseException] = []
    try:
        await proactor.web.stop()
    except Exception as e:  # noqa: BLE001  (collected; every part still gets its stop)
        errors.append(e)
    # Take no new input, then let actors have what was already accepted (received events
    # in the queue are stored and acked already: dropping them would skip them).
    for link in proactor.links.values():
        link.transport.pause_reading()
    drained = proactor.dispatcher.drain_all()
    if drained:
        log.info("%s: dispatched %d queued messages before stopping", proactor.name, drained)
    timeout = proactor.settings.stop_timeout_seconds
    errors += await _stop_runnables(runnables, timeout)
    await proactor.dispatcher.stop()
    errors += await _stop_links(proactor, timeout)
    try:
        await proactor.store.stop()
    except (StoreError, StateError) as e:
        errors.append(e)
    return errors


async def _stop_runnables(runnables: Iterable[Runnable], timeout: float) -> list[BaseException]:
    """Ask every started runnable to stop (reverse start order), then join each within
    ``timeout``."""
    started = list(runnables)
    errors: list[BaseException] = []
    for runnable in reversed(started):
        try:
            runnable.stop()
        except Exception as e:  # noqa: BLE001  (collected and reported by the caller)
            errors.append(e)
    for runnable in reversed(started):
        try:
            await asyncio.wait_for(runnable.join(), timeout)
        except TimeoutError:
            errors.append(TimeoutError(f"{_name_of(runnable)} did not stop in {timeout} s"))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    return errors


async def _stop_links(proactor: Proactor, timeout: float) -> list[BaseException]:
    errors: list[BaseException] = []
    for link in reversed(list(proactor.links.values())):
        try:
            await asyncio.wait_for(link.stop(timeout), timeout * 2)
        except (TimeoutError, OSError) as e:
            errors.append(e)
    await proactor.mqtt_clients.stop(timeout)
    return errors


def _name_of(runnable: Runnable) -> str:
    return getattr(runnable, "name", type(runnable).__name__)
