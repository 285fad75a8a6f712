"""Tests of the shipped actors (actors/): relay, thermometer, bridge, HTTP poller.

Shared pieces live here: a registry that knows the actors' types, a recorder for routed
events, and ways to await things through comm events (never by sleeping).
"""

from __future__ import annotations

from gwproactor_actors import REGISTRY as ACTORS_REGISTRY

from gwproactor import MessageRegistry, Proactor
from tests.helpers import REGISTRY as TEST_REGISTRY
from tests.helpers import TIMEOUT, EventRecorder, wait_until


def actors_registry() -> MessageRegistry:
    """A fresh registry with the actors' types and the test types (the proactor adds to the
    registry it is given, so tests must not share ``actors.REGISTRY`` itself)."""
    registry = MessageRegistry()
    registry.include(ACTORS_REGISTRY)
    registry.include(TEST_REGISTRY)
    return registry


def add_recorder(proactor: Proactor, *type_names: str, name: str = "recorder") -> EventRecorder:
    """An EventRecorder on ``proactor`` that the given event types are routed to."""
    recorder = EventRecorder(name, proactor)
    proactor.add_communicator(recorder)
    for type_name in type_names:
        proactor.route(type_name, name)
    return recorder


async def wait_recorded(
    proactor: Proactor, recorder: EventRecorder, count: int, timeout: float = TIMEOUT
) -> None:
    """Return once ``recorder`` (on ``proactor``) holds at least ``count`` events."""
    with proactor.listener("message.dispatched", lambda e: e.source == recorder.name) as heard:
        await wait_until(lambda: len(recorder.events) >= count, heard, timeout)
