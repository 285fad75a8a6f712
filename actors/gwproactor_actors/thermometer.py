"""A thermometer behind a blocking driver, read periodically by a worker thread."""

from __future__ import annotations

import math
import random
import time
from typing import ClassVar

from gwproactor import (
    ActorSettings,
    Payload,
    ServicesInterface,
    SyncAsyncInteractionThread,
    SyncThreadActor,
)
from gwproactor_actors.messages import TemperatureReading


class SimulatedThermometerDriver:
    """A 1-Wire-like sensor: each read blocks ``latency_seconds`` and returns a slowly
    varying temperature with a little noise."""

    def __init__(self, base_celsius: float = 21.0, latency_seconds: float = 0.01) -> None:
        self.base_celsius = base_celsius
        self.latency_seconds = latency_seconds
        self.reads = 0

    def read(self) -> float:
        time.sleep(self.latency_seconds)  # the conversion time of the sensor
        self.reads += 1
        drift = 2.0 * math.sin(self.reads / 20.0)
        return round(self.base_celsius + drift + random.uniform(-0.1, 0.1), 2)


class ThermometerThread(SyncAsyncInteractionThread):
    def __init__(
        self,
        name: str,
        driver: SimulatedThermometerDriver,
        services: ServicesInterface,
        period_seconds: float,
    ) -> None:
        super().__init__(f"{name}.io", iterate_seconds=period_seconds)
        self.sensor = name
        self.driver = driver
        self.services = services

    def _ext_iterate(self) -> None:
        reading = TemperatureReading(sensor=self.sensor, celsius=self.driver.read())
        self.services.generate_event_threadsafe(reading)


class ThermometerActor(SyncThreadActor):
    """Reads the sensor every ``period_seconds`` (option, default 1.0); each reading is a
    ``gw.temperature`` event."""

    payload_types: ClassVar[tuple[type[Payload], ...]] = (TemperatureReading,)

    def __init__(
        self,
        name: str,
        services: ServicesInterface,
        settings: ActorSettings | None = None,
        driver: SimulatedThermometerDriver | None = None,
    ) -> None:
        options = settings.options if settings is not None else {}
        self.period_seconds = float(options.get("period_seconds", 1.0))
        self.driver = driver or SimulatedThermometerDriver(float(options.get("base_celsius", 21.0)))
        super().__init__(name, services, settings=settings)

    def make_thread(self) -> SyncAsyncInteractionThread:
        return ThermometerThread(self.name, self.driver, self.services, self.period_seconds)
