"""Conformance with gwproactor's API reference: every documented name either works in its
documented form (its check calls it and asserts the documented effect) or is a migration
row (renamed or left out) with a replacement and a reason. The names come from the
reference file itself (``tests/api/reference.py``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import pytest

from tests.api.checks import CHECKS, Check, Env
from tests.api.inventory import README, ROWS, migration_table, replace_readme_table, working_share
from tests.api.reference import Kind, reference_names

if TYPE_CHECKING:
    pass

NAMES = [ref.name for ref in reference_names()]


def _resolve(dotted: str) -> object:
    """Import ``a.b.C.d`` as far as it is a module, then follow attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            fields = getattr(obj, "model_fields", {})  # pydantic fields are not attributes
            obj = fields[attribute] if attribute in fields else getattr(obj, attribute)
        return obj
    raise ImportError(dotted)


def _checks() -> dict[str, tuple[Check, list[str]]]:
    """Each check once, with the names it serves."""
    by_function: dict[str, tuple[Check, list[str]]] = {}
    for name, check in CHECKS.items():
        by_function.setdefault(check.__name__, (check, []))[1].append(name)
    return by_function


@pytest.mark.parametrize("name", NAMES)
def test_documented_name(name: str) -> None:
    """A working name has a check (run by test_documented_forms); any other name is a
    migration row with a reason and, if it names one, a replacement that exists."""
    row = ROWS.get(name)
    assert row is not None, f"{name} is documented but has no row in tests/api/inventory.py"
    if row.working:
        assert name in CHECKS, f"{name} is marked {row.verdict} but nothing checks it"
    else:
        assert name not in CHECKS, f"{name} has a check but is marked {row.verdict}"
        assert row.reason, f"{name}: a migration row needs a reason"
        if row.replacement:
            _resolve(row.replacement)  # the replacement exists


@pytest.mark.parametrize("check_name", sorted(_checks()))
async def test_documented_forms(check_name: str, env: Env) -> None:
    """The documented calls of the names a check serves work and have their effect."""
    check, names = _checks()[check_name]
    failing = [n for n in names if not ROWS[n].working]
    assert not failing, f"checked but marked as migrations: {failing}"
    await check(env)


def test_the_reference_is_read_whole() -> None:
    kinds = [ref.kind for ref in reference_names()]
    # 20 documented classes plus ProactorSettings' nested Config, 3 functions, 176 members:
    # the 199 names the issue counts, and the nested class as its own entry.
    assert (kinds.count(Kind.CLASS), kinds.count(Kind.FUNCTION)) == (21, 3)
    assert kinds.count(Kind.MEMBER) == 176
    assert len(set(NAMES)) == len(NAMES) == 200


def test_rows_and_checks_name_only_documented_names() -> None:
    documented = set(NAMES)
    assert set(ROWS) == documented, sorted(set(ROWS) ^ documented)
    assert set(CHECKS) <= documented, sorted(set(CHECKS) - documented)


def test_documented_names_are_exported() -> None:
    import gwproactor

    classes_and_functions = {ref.name for ref in reference_names() if "." not in ref.name}
    assert classes_and_functions <= set(gwproactor.__all__)
    for name in classes_and_functions:
        assert getattr(gwproactor, name) is not None


def test_at_least_nine_in_ten_work_in_their_documented_form() -> None:
    working, relevant = working_share()
    assert working / relevant >= 0.9, f"{working} of {relevant}"


def test_readme_migration_table_is_generated_from_the_rows() -> None:
    text = README.read_text(encoding="utf-8")
    assert replace_readme_table(text) == text, (
        "README's migration table is stale: run `python -m tests.api.inventory --write`"
    )
    assert migration_table() in text
