"""Bases for the small record classes a gateway builds at start-up (comm events, watchdog
names, link transitions, web configs): what ``@dataclass(slots=True)`` and
``@dataclass(frozen=True, slots=True)`` give them, written once here.

A dataclass generates its ``__init__``, ``__repr__`` and ``__eq__`` (and, frozen, its
``__setattr__``, ``__delattr__`` and ``__hash__``) as source text compiled at import: about
2.3 million instructions a class, 4.1 million frozen (~0.5-1 ms each), which a gateway paid
for every record class on its start-up path (issue 15). A subclass lists its fields in
``__slots__`` (in constructor order) and writes its ``__init__``; a frozen one sets its
fields with ``object.__setattr__``.

What stays as the dataclasses had it: positional or keyword construction (as each
``__init__`` writes it), ``==`` between instances of the same class comparing the fields in
order (``NotImplemented`` otherwise), ``repr`` as ``Name(field=value, ...)``,
``__match_args__``, copy and pickle; frozen: ``FrozenInstanceError`` on assignment or
deletion and a hash of the fields; mutable: unhashable. Not kept: ``dataclasses.fields``,
``replace`` and ``asdict`` (these are not dataclasses).
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any, ClassVar

__all__ = ("FrozenRecord", "Record")


class Record:
    """A mutable record: fields in ``__match_args__``, compared and shown in that order."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()

    def _fields(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self.__match_args__])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._fields() == other._fields()
        return NotImplemented

    __hash__: ClassVar[None] = None  # type: ignore[assignment]  # mutable: unhashable

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__qualname__}({fields})"

    def __getstate__(self) -> tuple[Any, ...]:
        return self._fields()

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__match_args__, state, strict=True):
            object.__setattr__(self, name, value)


class FrozenRecord(Record):
    """An immutable record: assignment and deletion raise ``FrozenInstanceError``;
    hashable by its fields."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._fields())
