"""A relay behind a blocking driver, run by a worker thread."""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

from gwproactor import (
    ActorSettings,
    Message,
    Payload,
    ServicesInterface,
    SyncAsyncInteractionThread,
    SyncThreadActor,
)
from gwproactor_actors.messages import RelaySet, RelayStateChanged


class SimulatedRelayDriver:
    """Stands in for a relay on a serial bus: every call blocks for ``latency_seconds``,
    as a real bus transaction would, and ``fail_next`` makes the next call raise OSError."""

    def __init__(self, latency_seconds: float = 0.005) -> None:
        self.latency_seconds = latency_seconds
        self.closed = False
        self.fail_next = False
        self.calls = 0
        self._lock = threading.Lock()

    def set(self, closed: bool) -> bool:
        """Move the relay; returns the position read back. Blocking."""
        with self._lock:
            self.calls += 1
            time.sleep(self.latency_seconds)  # the bus transaction itself
            if self.fail_next:
                self.fail_next = False
                raise OSError("relay did not answer")
            self.closed = closed
            return self.closed

    def read(self) -> bool:
        with self._lock:
            time.sleep(self.latency_seconds)
            return self.closed


class RelayThread(SyncAsyncInteractionThread):
    def __init__(self, name: str, driver: SimulatedRelayDriver, services: ServicesInterface):
        super().__init__(f"{name}.io", iterate_seconds=60.0)
        self.relay = name
        self.driver = driver
        self.services = services

    def _ext_setup(self) -> None:
        # Report where the relay is at start: the first event a parent sees from it.
        self._ext_report_state(self.driver.read(), "startup")

    def _ext_handle_message(self, message: Any) -> None:
        if isinstance(message, Message) and isinstance(message.payload, RelaySet):
            closed = self.driver.set(message.payload.closed)
            self._ext_report_state(closed, message.header.src)

    def _ext_iterate(self) -> None:
        self.driver.read()  # a periodic read keeps the bus and the watchdog honest

    def _ext_report_state(self, closed: bool, by: str) -> None:
        event = RelayStateChanged(relay=self.relay, closed=closed, commanded_by=by)
        self.services.generate_event_threadsafe(event)


class RelayActor(SyncThreadActor):
    """Handles ``gw.relay.set``; every position change becomes a ``gw.relay.state`` event.

    Options: ``latency_seconds`` (simulated bus time per call).
    """

    payload_types: ClassVar[tuple[type[Payload], ...]] = (RelaySet, RelayStateChanged)

    def __init__(
        self,
        name: str,
        services: ServicesInterface,
        settings: ActorSettings | None = None,
        driver: SimulatedRelayDriver | None = None,
    ) -> None:
        options = settings.options if settings is not None else {}
        self.driver = driver or SimulatedRelayDriver(float(options.get("latency_seconds", 0.005)))
        super().__init__(name, services, settings=settings)

    def make_thread(self) -> SyncAsyncInteractionThread:
        return RelayThread(self.name, self.driver, self.services)
