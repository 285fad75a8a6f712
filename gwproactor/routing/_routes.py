"""Which communicator gets a link message (or event) that names no actor: by its type name,
or by a type pattern (``site.*``, ``gw.?.state``; the store's query patterns)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar, overload

from gwproactor.store._pattern import TypePattern, validate_route_key

__all__ = ("Routes", "validate_route_key")

_CACHE_MAX = 4096
_T = TypeVar("_T")


class Routes(Mapping[str, str]):
    """Type name or pattern -> communicator name. Loop-only.

    Looking a type up (``routes[type_name]``, ``routes.get(type_name)``, ``type_name in
    routes``) resolves it: the exact route if there is one, else the first pattern added
    that matches. Iterating gives the keys as added (type names and patterns). Lookups of
    types seen before are one dict access (a bounded cache)."""

    def __init__(self) -> None:
        self._exact: dict[str, str] = {}
        self._patterns: dict[str, tuple[TypePattern, str]] = {}
        self._cache: dict[str, str | None] = {}

    def add(self, key: str, communicator: str) -> None:
        """Route ``key`` (a type name or a pattern) to ``communicator``; adding a key again
        replaces its route. Raises ConfigError (InvalidNameError for a bad type name)."""
        pattern = validate_route_key(key)
        if pattern.is_exact:
            self._exact[key] = communicator
        else:
            self._patterns[key] = (pattern, communicator)
        self._cache.clear()

    def __getitem__(self, type_name: str) -> str:
        exact = self._exact.get(type_name)
        if exact is not None:
            return exact
        if type_name in self._cache:
            target = self._cache[type_name]
        else:
            target = next(
                (name for p, name in self._patterns.values() if p.matches(type_name)), None
            )
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[type_name] = target
        if target is None:
            raise KeyError(type_name)
        return target

    @overload
    def get(self, type_name: str, /) -> str | None: ...
    @overload
    def get(self, type_name: str, default: str, /) -> str: ...
    @overload
    def get(self, type_name: str, default: _T, /) -> str | _T: ...

    def get(self, type_name: str, default: object = None, /) -> object:
        """``routes[type_name]``, or ``default`` when no route matches. Its own method, not
        ``Mapping.get`` (a frame and a try/except more): the dispatcher asks once per
        message."""
        exact = self._exact.get(type_name)
        if exact is not None:
            return exact
        if not self._patterns:
            return default
        try:
            return self[type_name]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        yield from self._exact
        yield from self._patterns

    def __len__(self) -> int:
        return len(self._exact) + len(self._patterns)

    def as_dict(self) -> dict[str, str]:
        """Every key and its communicator, as added."""
        return {**self._exact, **{k: name for k, (_, name) in self._patterns.items()}}
