"""The ``actors`` section of ``/status``: per communicator, what it is, whether it runs,
what it handled and how it failed, and the watchdog names it pats.

Errors are counted once each: the dispatcher counts a ``process_message`` that raised or
returned Err; a thread actor's worker counts what failed in the thread (reading a device,
handling a queued message). ``errors`` is their sum; ``last_error`` the later of the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gwproactor.actor.communicator import CommunicatorInterface
from gwproactor.actor.sync_thread import SyncAsyncInteractionThread
from gwproactor.observe.stats import ActorActivity
from gwproactor.watchdog import WatchdogEntry

__all__ = ("actor_status",)


def actor_status(
    communicator: CommunicatorInterface,
    activity: ActorActivity | None,
    watched: Mapping[str, WatchdogEntry],
    gateway_state: str,
    wall: float,
) -> dict[str, Any]:
    """One actor's entry (JSON-ready). Loop-only; a thread actor's counters are read as
    the thread last wrote them."""
    activity = activity or ActorActivity()
    thread = getattr(communicator, "thread", None)
    if not isinstance(thread, SyncAsyncInteractionThread):
        thread = None
    errors = activity.errors
    last_error, last_error_time = activity.last_error, activity.last_error_time
    last_message = activity.last_message
    if thread is not None:
        errors += thread.errors
        if thread.last_error_time > last_error_time:
            last_error, last_error_time = thread.last_error, thread.last_error_time
        last_message = max(last_message, thread.last_message_time)
    monitored: dict[str, Any] = {}
    stalled = False
    for name in communicator.monitored_names:
        entry = watched.get(name.name)
        if entry is None:
            continue
        stalled = stalled or entry.stalled
        monitored[name.name] = {
            "timeout_seconds": entry.timeout_seconds,
            "silent_seconds": round(entry.silent_seconds, 3),
            "last_pat": round(wall - entry.silent_seconds, 3),
            "stalled": entry.stalled,
        }
    return {
        "class": type(communicator).__name__,
        "kind": "thread" if thread is not None else "loop",
        "state": "stalled" if stalled else _state(thread, gateway_state),
        "messages": activity.handled,
        "thread_handled": thread.handled if thread is not None else None,
        "errors": errors,
        "handler_errors": activity.errors,
        "last_error": last_error or None,
        "last_error_time": last_error_time or None,
        "last_message_time": last_message or None,
        "monitored": monitored,
    }


def _state(thread: SyncAsyncInteractionThread | None, gateway_state: str) -> str:
    if thread is None:
        return gateway_state  # a loop actor lives and stops with the gateway
    if thread.error is not None:
        return "failed"
    if thread.is_alive():
        return "running"
    return "stopped" if thread.ident is not None else "not_started"
