"""The stopping sequence of a gateway, in one place.

The exact reverse of the start order: the external watchdog hears STOPPING first (a slow
stop must not look like a hang), then the web server goes, input is paused, the actors get
what the receive queue already accepted, the actors and their threads stop, then the
dispatcher, the links and the store. Every join is bounded by ``stop_timeout_seconds`` and
every part gets its stop even when an earlier one fails: errors are collected and returned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from gwproactor.actor.communicator import Runnable
from gwproactor.errors import StateError, StoreError
from gwproactor.links import Link
from gwproactor.mqtt import MQTTClients
from gwproactor.routing import Dispatcher
from gwproactor.store import EventStore
from gwproactor.watchdog import InternalWatchdog, WatchdogPatter

__all__ = ("stop_parts",)


class _Stoppable(Protocol):
    async def stop(self) -> None: ...


async def stop_parts(
    name: str,
    *,
    patter: WatchdogPatter,
    watchdog: InternalWatchdog,
    web: _Stoppable,
    links: Mapping[str, Link],
    dispatcher: Dispatcher,
    runnables: list[Runnable],
    mqtt_clients: MQTTClients,
    store: EventStore,
    flush_delivered: Callable[[], None],
    timeout: float,
    log: logging.Logger,
) -> list[BaseException]:
    """Stop every part of a running (or partly started) gateway, each join bounded by
    ``timeout``; returns the errors met (every part still gets its stop)."""
    patter.stopping()
    await patter.stop()
    patter.notifier.close()
    watchdog.stop()
    errors: list[BaseException] = []
    try:
        await web.stop()
    except Exception as e:  # noqa: BLE001  (collected; every part still gets its stop)
        errors.append(e)
    # Take no new input, then let actors have what was already accepted (received events
    # in the queue are stored and acked already: dropping them would skip them).
    for link in links.values():
        link.transport.pause_reading()
    drained = dispatcher.drain_all()
    if drained:
        log.info("%s: dispatched %d queued messages before stopping", name, drained)
    errors += await _stop_runnables(runnables, timeout)
    await dispatcher.stop()
    errors += await _stop_links(links, mqtt_clients, timeout)
    flush_delivered()  # what actors returned from is not owed at the next start
    try:
        await store.stop()
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


async def _stop_links(
    links: Mapping[str, Link], mqtt_clients: MQTTClients, timeout: float
) -> list[BaseException]:
    errors: list[BaseException] = []
    for link in reversed(list(links.values())):
        try:
            await asyncio.wait_for(link.stop(timeout), timeout * 2)
        except Exception as e:  # noqa: BLE001  (collected: the store must still be closed)
            errors.append(e)
    try:
        await mqtt_clients.stop(timeout)
    except Exception as e:  # noqa: BLE001
        errors.append(e)
    return errors


def _name_of(runnable: Runnable) -> str:
    return getattr(runnable, "name", type(runnable).__name__)
