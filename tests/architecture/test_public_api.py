"""``gwproactor.__all__`` is the public surface, and a test keeps it true: every exported
name exists, and every gwproactor class a public signature mentions is exported."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Iterator

import gwproactor
from gwproactor import errors

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def test_every_exported_name_exists_once() -> None:
    assert len(set(gwproactor.__all__)) == len(gwproactor.__all__)
    for name in gwproactor.__all__:
        assert hasattr(gwproactor, name), name


def test_every_library_error_is_exported() -> None:
    library_errors = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, Exception)
        and value.__module__ == errors.__name__
    }
    assert library_errors <= set(gwproactor.__all__), library_errors - set(gwproactor.__all__)


def _functions(value: object) -> Iterator[Callable[..., object]]:
    if isinstance(value, property):
        if value.fget is not None:
            yield value.fget
    elif isinstance(value, classmethod | staticmethod):
        yield value.__func__
    elif inspect.isfunction(value):
        yield value


def _members(name: str, obj: object) -> Iterator[tuple[str, object]]:
    if not inspect.isclass(obj):
        yield name, obj
        return
    for member, value in vars(obj).items():
        if not member.startswith("_") or member == "__init__":
            yield f"{name}.{member}", value


def _annotation_texts(fn: Callable[..., object]) -> Iterator[str]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    for annotation in [p.annotation for p in signature.parameters.values()] + [
        signature.return_annotation
    ]:
        if isinstance(annotation, str):
            yield annotation


def unexported_types_in_public_signatures(
    exported: frozenset[str] = frozenset(gwproactor.__all__),
) -> dict[str, set[str]]:
    missing: dict[str, set[str]] = {}
    for name in exported:
        for label, value in _members(name, getattr(gwproactor, name)):
            for fn in _functions(value):
                module = sys.modules.get(fn.__module__)
                namespace = vars(module) if module is not None else {}
                for text in _annotation_texts(fn):
                    for ident in _IDENT.findall(text):
                        target = namespace.get(ident)
                        if (
                            inspect.isclass(target)
                            and target.__module__.startswith("gwproactor.")
                            and ident not in exported
                            and ident not in _INTERNAL_BY_DESIGN
                        ):
                            missing.setdefault(ident, set()).add(label)
    return missing


# Types a signature may name that users never build or hold themselves.
# (Links are built by the Proactor: Link's constructor and owner are not for users.)
_INTERNAL_BY_DESIGN = frozenset({"TransportListener", "ListenerHub", "LinkOwner"})


def test_types_in_public_signatures_are_exported() -> None:
    assert unexported_types_in_public_signatures() == {}


def test_the_signature_walk_sees_types() -> None:
    # The walk must find something when a name is missing: leave one out and look.
    without = frozenset(gwproactor.__all__) - {"StoredEvent"}
    assert "StoredEvent" in unexported_types_in_public_signatures(without)
