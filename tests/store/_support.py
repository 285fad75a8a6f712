"""Helpers and the store fixture shared by the event store tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from result import Err, Ok, Result

from gwproactor.errors import StoreError
from gwproactor.store import EventStore, StoreSettings, StoreState

T = TypeVar("T")
TIMEOUT = 20.0
TYPE = "t.x"  # 3 bytes
SRC = "s"  # 1 byte
PAYLOAD = b"p" * 100
EVENT_BYTES = len(PAYLOAD) + len(TYPE) + 4 + len(SRC)  # with 4-character event ids
SMALL = 1000  # a byte bound that holds FIT (9) events of EVENT_BYTES
FIT = SMALL // EVENT_BYTES


def eid(i: int) -> str:
    return f"e{i:03d}"


def ok(result: Result[T, StoreError]) -> T:
    assert isinstance(result, Ok), result
    return result.ok_value


def err(result: Result[Any, StoreError]) -> StoreError:
    assert isinstance(result, Err), result
    return result.err_value


def state_of(store: EventStore) -> StoreState:
    """Read the state through a call, so that mypy does not narrow it across awaits."""
    return store.state


async def wait(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(TIMEOUT):
        return await awaitable


async def gather(futures: list[asyncio.Future[T]]) -> list[T]:
    async with asyncio.timeout(TIMEOUT):
        return list(await asyncio.gather(*futures))


@dataclass
class Problems:
    seen: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, kind: str, detail: str) -> None:
        self.seen.append((kind, detail))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.seen]

    def details(self, kind: str) -> list[str]:
        return [detail for k, detail in self.seen if k == kind]


class StoreFactory(Protocol):
    def __call__(
        self, settings: StoreSettings | None = None, *, path: Path | None = None
    ) -> tuple[EventStore, Problems]: ...


@asynccontextmanager
async def store_factory(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Builds stores on ``tmp_path/events.db`` by default; stops all of them on exit.

    Each test module wraps this in its own ``make_store`` fixture (there is no conftest).
    """
    stores: list[EventStore] = []

    def make(
        settings: StoreSettings | None = None, *, path: Path | None = None
    ) -> tuple[EventStore, Problems]:
        problems = Problems()
        store = EventStore(
            path or tmp_path / "events.db", settings or StoreSettings(), on_problem=problems
        )
        stores.append(store)
        return store, problems

    yield make
    for store in stores:
        await wait(store.stop())


async def started(
    make: StoreFactory, settings: StoreSettings | None = None
) -> tuple[EventStore, Problems]:
    store, problems = make(settings)
    await wait(store.start())
    return store, problems


def append(
    store: EventStore, i: int, payload: bytes = PAYLOAD
) -> asyncio.Future[Result[int, StoreError]]:
    return store.append(TYPE, eid(i), 1_000 + i, SRC, payload)


async def append_all(store: EventStore, count: int, first: int = 0) -> list[int]:
    """Append sequentially (one commit each); return the seqs."""
    return [ok(await wait(append(store, i))) for i in range(first, first + count)]
