"""Event type patterns: dotted names with hat-event style wildcards.

A type name is a dotted sequence of levels (``gw.relay.state``). A pattern is the same
with two wildcard levels:

- ``?`` matches exactly one level (``gw.?.state`` matches ``gw.relay.state``);
- ``*`` matches zero or more trailing levels and may only be the last level (``gw.*``
  matches ``gw``, ``gw.relay`` and ``gw.relay.state``; ``*`` alone matches everything).

Wildcards are whole levels: ``gw.rel*`` is invalid, not a prefix match.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass

from gwproactor.errors import ConfigError, InvalidQueryError
from gwproactor.wire.names import is_valid_name, validate_name

__all__ = (
    "SQL_MATCH_FUNCTION",
    "TypePattern",
    "compile_pattern",
    "match_type",
    "register_sql_function",
    "validate_route_key",
)

ONE_LEVEL = "?"
ANY_SUFFIX = "*"
SQL_MATCH_FUNCTION = "gw_type_match"
"""Name of the deterministic sqlite function ``gw_type_match(pattern, type_name)``."""

# '/' is the character right after '.', so [prefix + '.', prefix + '/') is exactly the
# set of strings that start with ``prefix + '.'`` under sqlite's BINARY collation.
_LEVEL_SEP = "."
_AFTER_SEP = chr(ord(_LEVEL_SEP) + 1)


@dataclass(frozen=True, slots=True)
class TypePattern:
    """A validated pattern. Build it with :func:`compile_pattern`; immutable, thread-safe."""

    text: str
    levels: tuple[str, ...]

    @property
    def is_exact(self) -> bool:
        """True when the pattern has no wildcard and matches one name only."""
        return ONE_LEVEL not in self.levels and ANY_SUFFIX not in self.levels

    def matches(self, type_name: str) -> bool:
        """Whether ``type_name`` matches this pattern."""
        names = type_name.split(_LEVEL_SEP)
        for i, level in enumerate(self.levels):
            if level == ANY_SUFFIX:
                return True
            if i >= len(names):
                return False
            if level not in (ONE_LEVEL, names[i]):
                return False
        return len(names) == len(self.levels)

    def sql(self, column: str = "type_name") -> tuple[str, tuple[str, ...]]:
        """An SQL condition on ``column`` that is true exactly when the pattern matches.

        Returns ``(condition, parameters)`` for ``?`` placeholders. The literal levels
        before the first wildcard become a range on ``column`` so that sqlite can use an
        index; a ``?`` level then needs :data:`SQL_MATCH_FUNCTION`, registered on the
        connection by :func:`register_sql_function`. ``("1", ())`` for ``*``.
        ``column`` is trusted text (a column name), never user input.
        """
        if self.is_exact:
            return f"{column} = ?", (self.text,)
        literal: list[str] = []
        for level in self.levels:
            if level in (ONE_LEVEL, ANY_SUFFIX):
                break
            literal.append(level)
        prefix = _LEVEL_SEP.join(literal)
        if self.levels[len(literal)] == ANY_SUFFIX:
            # Only literal levels and a final '*': the prefix itself or anything under it.
            if not literal:
                return "1", ()
            return (
                f"({column} = ? OR ({column} >= ? AND {column} < ?))",
                (prefix, prefix + _LEVEL_SEP, prefix + _AFTER_SEP),
            )
        call = f"{SQL_MATCH_FUNCTION}(?, {column})"
        if not literal:
            return call, (self.text,)
        # '?' needs at least one more level, so the bare prefix cannot match.
        return (
            f"({column} >= ? AND {column} < ? AND {call})",
            (prefix + _LEVEL_SEP, prefix + _AFTER_SEP, self.text),
        )


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> TypePattern:
    """Validate ``pattern`` and return its compiled form (cached).

    Raises:
        InvalidQueryError: (a ValueError) the pattern is empty, has an empty level
            (``a..b``, ``.a``, ``a.``), a wildcard mixed with other characters in a level
            (``a*``, ``a.b?``), or a ``*`` that is not the last level (``a.*.b``). The
            message names the problem.
    """
    if not pattern:
        raise InvalidQueryError("invalid type pattern '': empty")
    levels = tuple(pattern.split(_LEVEL_SEP))
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if not level:
            raise InvalidQueryError(f"invalid type pattern {pattern!r}: level {i + 1} is empty")
        if level == ANY_SUFFIX:
            if i != last:
                raise InvalidQueryError(
                    f"invalid type pattern {pattern!r}: '*' is only allowed as the last level"
                )
        elif level != ONE_LEVEL and (ONE_LEVEL in level or ANY_SUFFIX in level):
            raise InvalidQueryError(
                f"invalid type pattern {pattern!r}: level {level!r} mixes a wildcard with "
                "other characters; '?' and '*' must be whole levels"
            )
    return TypePattern(text=pattern, levels=levels)


def match_type(pattern: str, type_name: str) -> bool:
    """Whether ``type_name`` matches ``pattern``.

    Raises:
        ValueError: ``pattern`` is invalid (see :func:`compile_pattern`).
    """
    return compile_pattern(pattern).matches(type_name)


def _sql_match(pattern: str, type_name: str) -> bool:
    return compile_pattern(pattern).matches(type_name)


def register_sql_function(connection: sqlite3.Connection) -> None:
    """Register :data:`SQL_MATCH_FUNCTION` on ``connection``.

    Thread: the thread that owns ``connection``.
    """
    connection.create_function(SQL_MATCH_FUNCTION, 2, _sql_match, deterministic=True)


def validate_route_key(key: str) -> TypePattern:
    """``key`` as a pattern: a type name (an exact route) or a pattern with ``?`` (one
    level) and ``*`` (any trailing levels) as whole levels. Raises InvalidNameError for a
    key without wildcards that is not a valid name, ConfigError for a bad pattern, so a
    route that could never match is refused rather than kept silently."""
    if ONE_LEVEL not in key and ANY_SUFFIX not in key:
        validate_name(key, "name")  # the error names the character or the rule broken
        return compile_pattern(key)
    try:
        pattern = compile_pattern(key)
    except InvalidQueryError as e:
        raise ConfigError(f"route {key!r}: {e}") from e
    literal = [level for level in pattern.levels if level not in (ONE_LEVEL, ANY_SUFFIX)]
    if not all(is_valid_name(level) for level in literal):
        raise ConfigError(f"route {key!r}: a level is not a valid name part")
    return pattern
