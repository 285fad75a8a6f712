"""An actor that polls an HTTP endpoint on the loop and turns its JSON answers into events.

Many field devices (inverters, meters, PLC gateways) expose their values over a small HTTP
JSON API. The poller asks on a schedule with an aiohttp client on the proactor's own loop
(nothing blocks it: DNS, connect and read are all awaited), picks numbers out of the
answer and generates one :class:`~actors.messages.HttpReading` event per good answer.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, model_validator
from result import Err, Ok, Result

from gwproactor import (
    Actor,
    ActorSettings,
    Message,
    Payload,
    ServicesInterface,
    StateError,
    StoreError,
)
from gwproactor_actors.messages import MAX_READINGS, HttpReading

__all__ = (
    "HttpPoller",
    "PollError",
    "PollerOptions",
    "PollerStats",
    "backoff_delay",
    "pick_values",
)

ErrorKind = Literal["connect", "timeout", "status", "json", "http", "internal"]


class PollerOptions(BaseModel):
    """The poller's ``options`` table; unknown keys are an error.

    ``fields`` maps a reading name to a dotted path into the JSON answer: object keys, or
    list indexes written as integers (``"sensors.0.value"``); the empty path is the whole
    answer. Every path must lead to a number (not a boolean, not NaN) or the poll counts
    as a ``json`` error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="http:// or https:// URL to GET")
    period_seconds: float = Field(default=10.0, gt=0, description="between good polls")
    timeout_seconds: float = Field(default=5.0, gt=0, description="bound on one whole poll")
    fields: dict[str, str] = Field(
        default_factory=lambda: {"value": "value"},
        min_length=1,
        max_length=MAX_READINGS,
        description="reading name -> dotted path in the JSON answer",
    )
    backoff_factor: float = Field(
        default=2.0, ge=1.0, description="delay multiplier per consecutive failure"
    )
    backoff_max_seconds: float = Field(default=300.0, gt=0, description="longest delay")
    backoff_jitter: float = Field(
        default=0.1, ge=0, le=1, description="fraction of a failure delay drawn at random"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=16, description="bigger answers fail")

    @model_validator(mode="after")
    def _consistent(self) -> PollerOptions:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} is not http:// or https://")
        if self.backoff_max_seconds < self.period_seconds:
            raise ValueError("backoff_max_seconds must be at least period_seconds")
        return self


@dataclass(frozen=True, slots=True)
class PollError:
    """Why one poll produced no reading. ``kind``: ``connect`` (refused, reset, DNS),
    ``timeout`` (no complete answer within ``timeout_seconds``), ``status`` (not 200),
    ``json`` (not JSON, or a field missing or not a number), ``http`` (any other client
    error, e.g. a truncated body), ``internal`` (a bug in the poller, reported as an error).
    """

    kind: ErrorKind
    detail: str


@dataclass
class PollerStats:
    """Counts since start. ``polls`` = ``readings`` + ``errors_total``."""

    polls: int = 0
    readings: int = 0
    stored: int = 0
    refused: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    consecutive_failures: int = 0
    last_error: str = ""

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())


def backoff_delay(
    period_seconds: float,
    failures: int,
    factor: float,
    max_seconds: float,
    jitter: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds from the start of a poll to the next one after ``failures`` consecutive
    failures: ``period_seconds`` when 0, else ``period_seconds * factor**failures`` capped
    at ``max_seconds``, shortened by up to the ``jitter`` fraction at random so that a fleet
    polling one server does not retry in lockstep."""
    if failures <= 0:
        return period_seconds
    # The cap on the exponent keeps the float finite; max_seconds caps the delay long before.
    delay = min(max_seconds, period_seconds * factor ** min(failures, 64))
    return delay * (1.0 - jitter * rand())


def pick_values(document: Any, fields: Mapping[str, str]) -> Result[dict[str, float], str]:
    """Follow each dotted path of ``fields`` into the decoded JSON ``document``. Err names
    the first reading whose path is missing or does not lead to a finite number."""
    values: dict[str, float] = {}
    for name, path in fields.items():
        node = document
        for part in path.split(".") if path else ():
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return Err(f"{name}: no {part!r} in {path!r}")
        # bool is an int in Python, but true is not a measurement.
        if isinstance(node, bool) or not isinstance(node, int | float):
            return Err(f"{name}: {path!r} is {type(node).__name__}, not a number")
        value = float(node)
        if not math.isfinite(value):
            return Err(f"{name}: {path!r} is not finite")
        values[name] = value
    return Ok(values)


class HttpPoller(Actor):
    """GETs ``options.url`` every ``period_seconds`` (the first poll at once) and generates
    a ``gw.http.reading`` event for every 200 answer whose JSON has all ``fields``.

    Contract:

    * A failed poll (see :class:`PollError`) is counted in ``stats.errors`` by kind and
      reported as a warning with the summary ``<name>: <kind>`` (rate-limited by the
      proactor), and the next poll waits :func:`backoff_delay`; the first good poll
      resets the backoff. No error ends the actor.
    * Polls never overlap: the next one starts ``delay`` after the previous one started,
      or at once if it took longer.
    * The ``aiohttp.ClientSession`` is created in ``start`` (on the loop) and closed in
      ``join``. ``stop`` cancels an in-flight request; ``join`` returns within
      ``stop_timeout_seconds`` (the poll task only has to unwind a cancelled request).

    Raises ValueError (pydantic's ValidationError) from the constructor on bad options.
    """

    payload_types: ClassVar[tuple[type[Payload], ...]] = (HttpReading,)

    def __init__(
        self, name: str, services: ServicesInterface, settings: ActorSettings | None = None
    ) -> None:
        super().__init__(name, services, settings)
        self.options = PollerOptions.model_validate(self.actor_settings.options)
        self.stats = PollerStats()
        self.session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.options.timeout_seconds)
        )
        self._task = asyncio.get_running_loop().create_task(
            self._run(self.session), name=f"actor[{self.name}].poll"
        )

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        super().stop()

    async def join(self) -> None:
        task = self._task
        try:
            if task is not None:
                # asyncio.wait does not raise, so a cancellation of join itself is not
                # mistaken for the poll task's own.
                await asyncio.wait({task}, timeout=self.services.settings.stop_timeout_seconds)
                if task.done() and not task.cancelled() and task.exception() is not None:
                    self.log.error("poll task failed: %r", task.exception())
        finally:
            # Also when the proactor's bound on join cancels us: never leak the session.
            if self.session is not None:
                session, self.session = self.session, None
                await session.close()
        await super().join()

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        return Err(TypeError(f"{self.name} takes no messages, got {message.message_type}"))

    async def _run(self, session: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        options = self.options
        next_at = loop.time()
        while True:
            wait = next_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the schedule itself, not a synchronisation
            started = loop.time()
            try:
                result = await self._poll(session)
            except Exception as e:  # a bug here must not end the polling
                self.log.debug("poll failed", exc_info=e)
                result = Err(PollError("internal", f"{type(e).__name__}: {e}"))
            self.stats.polls += 1
            match result:
                case Ok(reading):
                    self._reading(reading)
                case Err(error):
                    self._failed(error)
            delay = backoff_delay(
                options.period_seconds,
                self.stats.consecutive_failures,
                options.backoff_factor,
                options.backoff_max_seconds,
                options.backoff_jitter,
            )
            next_at = started + delay

    async def _poll(self, session: aiohttp.ClientSession) -> Result[HttpReading, PollError]:
        """One poll: fetch, then decode. Never raises for what the server or network does."""
        fetched = await self._fetch(session)
        if isinstance(fetched, Err):
            return fetched
        body, elapsed_ms = fetched.ok_value
        try:
            document = json.loads(body)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
            return Err(PollError("json", f"not JSON: {e}"))
        picked = pick_values(document, self.options.fields)
        if isinstance(picked, Err):
            return Err(PollError("json", picked.err_value))
        return Ok(
            HttpReading(
                url=self.options.url, status=200, values=picked.ok_value, elapsed_ms=elapsed_ms
            )
        )

    async def _fetch(
        self, session: aiohttp.ClientSession
    ) -> Result[tuple[bytes, float], PollError]:
        """One GET of a 200 answer's body and how long it took (ms), bounded by the
        session's total timeout; aiohttp's and the OS's errors become :class:`PollError`
        here, at the boundary."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with session.get(self.options.url) as response:
                if response.status != 200:
                    reason = f"HTTP {response.status} {response.reason or ''}".rstrip()
                    return Err(PollError("status", reason))
                body = await _read_bounded(response, self.options.max_body_bytes)
        except TimeoutError:
            # aiohttp's own timeout errors derive from TimeoutError too.
            return Err(PollError("timeout", f"no answer within {self.options.timeout_seconds} s"))
        except (aiohttp.ClientConnectionError, OSError) as e:
            return Err(PollError("connect", f"{type(e).__name__}: {e}"))
        except aiohttp.ClientError as e:
            return Err(PollError("http", f"{type(e).__name__}: {e}"))
        if body is None:
            return Err(PollError("http", f"answer larger than {self.options.max_body_bytes} B"))
        return Ok((body, (loop.time() - started) * 1000.0))

    def _reading(self, reading: HttpReading) -> None:
        stats = self.stats
        if stats.consecutive_failures:
            self.log.info(
                "%s answers again after %d failed polls",
                self.options.url,
                stats.consecutive_failures,
            )
        stats.readings += 1
        stats.consecutive_failures = 0
        try:
            future = self.services.generate_event(reading)
        except StateError as e:
            # The store is not running (moved aside, or stopping): this reading is lost,
            # but the next one may be stored again, so the poller goes on.
            stats.refused += 1
            self.services.report_problem(f"{self.name}: not stored", str(e))
            return
        future.add_done_callback(self._settled)

    def _failed(self, error: PollError) -> None:
        stats = self.stats
        stats.errors[error.kind] += 1
        stats.consecutive_failures += 1
        stats.last_error = f"{error.kind}: {error.detail}"
        # One summary per kind: a timeout after a run of 500s is news, another 500 is not.
        self.services.report_problem(
            f"{self.name}: {error.kind}",
            f"{self.options.url}: {error.detail} ({stats.consecutive_failures} in a row)",
            error=error.kind == "internal",
        )

    def _settled(self, future: asyncio.Future[Result[str, StoreError]]) -> None:
        if future.cancelled():
            return
        if isinstance(future.result(), Ok):
            self.stats.stored += 1
        else:
            self.stats.refused += 1  # the store counted and reported it already


async def _read_bounded(response: aiohttp.ClientResponse, max_bytes: int) -> bytes | None:
    """The body, or None once it exceeds ``max_bytes`` (a misconfigured URL pointing at a
    firmware image must not fill the gateway's memory)."""
    if response.content_length is not None and response.content_length > max_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
