"""Every public member of the classes an application programs against has a contract
docstring (what it does, returns, raises; the thread rule; what cancellation does)."""

from __future__ import annotations

import inspect

import pytest

from gwproactor.actor.communicator import ServicesInterface
from gwproactor.links import Link
from gwproactor.store import EventStore


def public_members(cls: type) -> list[str]:
    return sorted(name for name in vars(cls) if not name.startswith("_") or name == "__init__")


@pytest.mark.parametrize("cls", [Link, ServicesInterface, EventStore], ids=lambda c: c.__name__)
def test_every_public_member_has_a_docstring(cls: type) -> None:
    assert inspect.getdoc(cls)
    missing = [
        name
        for name in public_members(cls)
        if not (getattr(vars(cls)[name], "__doc__", None) or "").strip()
    ]
    assert missing == []


def test_the_class_docstrings_state_the_thread_rule() -> None:
    for cls in (Link, ServicesInterface, EventStore):
        doc = inspect.getdoc(cls) or ""
        assert "loop-only" in doc.lower() or "thread" in doc.lower(), cls
