"""Type patterns: matching in Python and the SQL translation used by queries."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwproactor.store import compile_pattern, match_type
from gwproactor.store._pattern import register_sql_function


@pytest.mark.parametrize(
    ("pattern", "type_name", "expected"),
    [
        ("gw.relay.state", "gw.relay.state", True),
        ("gw.relay.state", "gw.relay", False),
        ("gw.relay.state", "gw.relay.state.x", False),
        ("gw.relay", "gw.relayx", False),
        ("gw.?.state", "gw.relay.state", True),
        ("gw.?.state", "gw.thermo.state", True),
        ("gw.?.state", "gw.state", False),
        ("gw.?.state", "gw.a.b.state", False),
        ("?", "gw", True),
        ("?", "gw.relay", False),
        ("?.?", "gw.relay", True),
        ("gw.*", "gw", True),
        ("gw.*", "gw.relay", True),
        ("gw.*", "gw.relay.state", True),
        ("gw.*", "gwx.relay", False),
        ("gw.*", "other", False),
        ("*", "gw", True),
        ("*", "gw.relay.state", True),
        ("gw.?.*", "gw", False),
        ("gw.?.*", "gw.relay", True),
        ("gw.?.*", "gw.relay.state.now", True),
        ("?.relay.*", "x.relay", True),
        ("?.relay.*", "x.other", False),
    ],
)
def test_match_type(pattern: str, type_name: str, expected: bool) -> None:
    assert match_type(pattern, type_name) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty"),
        ("gw..state", "level 2 is empty"),
        (".gw", "level 1 is empty"),
        ("gw.", "level 2 is empty"),
        ("gw.*.state", "only allowed as the last level"),
        ("*.*", "only allowed as the last level"),
        ("gw.rel*", "must be whole levels"),
        ("gw.re?ay", "must be whole levels"),
        ("**", "must be whole levels"),
        ("??", "must be whole levels"),
    ],
)
def test_invalid_patterns_raise_value_error(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        compile_pattern(pattern)
    assert repr(pattern) in str(info.value)
    with pytest.raises(ValueError, match=message):
        match_type(pattern, "gw.relay")


def test_compiled_pattern_is_cached_and_exposes_levels() -> None:
    compiled = compile_pattern("gw.?.*")
    assert compiled is compile_pattern("gw.?.*")
    assert compiled.levels == ("gw", "?", "*")
    assert not compiled.is_exact
    assert compile_pattern("gw.relay").is_exact


_LEVELS = st.sampled_from(["a", "b", "ab", "a-b", "0"])
_NAMES = st.lists(_LEVELS, min_size=1, max_size=4).map(".".join)
_PATTERNS = st.builds(
    lambda levels, star: ".".join(levels + (["*"] if star else [])) or "*",
    st.lists(st.one_of(_LEVELS, st.just("?")), min_size=0, max_size=4),
    st.booleans(),
)


@given(pattern=_PATTERNS, names=st.lists(_NAMES, min_size=1, max_size=12))
def test_sql_translation_agrees_with_python(pattern: str, names: list[str]) -> None:
    compiled = compile_pattern(pattern)
    condition, params = compiled.sql()
    with closing(sqlite3.connect(":memory:")) as conn:
        register_sql_function(conn)
        conn.execute("CREATE TABLE t (type_name TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [(n,) for n in names])
        rows = conn.execute(f"SELECT type_name FROM t WHERE {condition}", params).fetchall()
    assert sorted(r[0] for r in rows) == sorted(n for n in names if compiled.matches(n))
