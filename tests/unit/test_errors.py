"""The error tree (gwproactor.errors): one root, one subclass per area, foreign errors
translated where they cross into gwproactor."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

import gwproactor
from gwproactor import errors
from gwproactor.errors import (
    ConfigError,
    DecodeError,
    EncodeError,
    InvalidNameError,
    InvalidQueryError,
    LinkError,
    ProactorError,
    QueueFullError,
    RoutingError,
    StateError,
    StoreError,
    StoreFullError,
    UnsendableEventError,
    WebServerError,
    WireError,
)
from gwproactor.mqtt._failover import BrokerSelector
from gwproactor.store._pattern import compile_pattern
from gwproactor.store._schema import open_database
from gwproactor.store._settings import StoreSettings
from gwproactor.wire.codec import MessageRegistry
from gwproactor.wire.message import Payload

PACKAGE = Path(gwproactor.__file__).parent

TREE: dict[type[Exception], tuple[type[Exception], ...]] = {
    ProactorError: (Exception,),
    ConfigError: (ProactorError, ValueError),
    StateError: (ProactorError, RuntimeError),
    WireError: (ProactorError,),
    DecodeError: (WireError,),
    EncodeError: (WireError,),
    InvalidNameError: (WireError, ValueError),
    LinkError: (ProactorError,),
    RoutingError: (ProactorError,),
    QueueFullError: (RoutingError,),
    StoreError: (ProactorError,),
    StoreFullError: (StoreError,),
    InvalidQueryError: (StoreError, ValueError),
    UnsendableEventError: (StoreError,),
    WebServerError: (ProactorError,),
}

# Builtin exceptions gwproactor raises on purpose, by module: arguments no caller could
# mean (as Python itself would), protocol signals paho expects, and ValueErrors inside
# pydantic validators (pydantic turns them into ValidationError, which the settings loader
# translates into ConfigError).
BUILTIN_RAISES_ALLOWED: dict[str, set[str]] = {
    "config/_settings.py": {"ValueError"},
    "mqtt/_buffered.py": {"BlockingIOError"},  # paho's "no data yet"
    "watchdog/_sdnotify.py": {"ValueError"},
    "watchdog/_external.py": {"ValueError"},
    "watchdog/_patter.py": {"AssertionError"},
    "web/_manager.py": {"TypeError"},
    # The reference's call forms: an argument of a type no form accepts is a TypeError,
    # as Python would raise (SyncThreadActor's thread, Proactor(name, settings), ...).
    "actor/sync_thread.py": {"TypeError"},
    "runtime/_reference_forms.py": {"TypeError"},
    "observe/logging_setup.py": {"TypeError"},
    "mqtt/_client.py": {"TypeError"},
    "routing/_routes.py": {"KeyError"},  # Routes is a Mapping: a missing key is a KeyError
    "store/_schema.py": {"AssertionError"},
    "cli/__init__.py": {"ArgumentTypeError"},
    "cli/_events.py": {"ValueError"},  # argparse's type= converters must raise it
    # A module __getattr__ (PEP 562: names loaded on first use) must raise AttributeError
    # for a name it does not have, or hasattr() and getattr(module, name, default) break.
    "__init__.py": {"AttributeError"},
    # An unknown keyword to a record's constructor, as Python (and @dataclass) would raise.
    "observe/stats.py": {"TypeError"},
    "config/__init__.py": {"AttributeError"},
    "mqtt/__init__.py": {"AttributeError"},
    "web/__init__.py": {"AttributeError"},
}


def test_the_tree_is_as_documented() -> None:
    assert {getattr(errors, name) for name in errors.__all__} == set(TREE)
    for cls, bases in TREE.items():
        assert cls.__bases__ == bases, cls
        assert cls.__doc__, cls


def test_every_error_is_exported_from_the_package_and_connect_error_is_gone() -> None:
    for name in errors.__all__:
        assert getattr(gwproactor, name) is getattr(errors, name)
        assert name in gwproactor.__all__
    assert not hasattr(errors, "ConnectError")  # never raised: a connect failure is reported


def test_gwproactor_raises_its_own_errors() -> None:
    # Any ``raise SomeBuiltinError(...)`` outside the allowed places means a caller would
    # have to catch something outside the tree.
    builtin_errors = {n for n, v in vars(builtins).items() if isinstance(v, type)} | {
        "ArgumentTypeError"
    }
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        # The shipped actors are application code, examples of the framework: what their
        # constructors raise, load_actor translates into ConfigError.
        if rel.startswith(("testing/", "actors/")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = getattr(exc, "id", getattr(exc, "attr", ""))
            if name in builtin_errors and name not in BUILTIN_RAISES_ALLOWED.get(rel, set()):
                found.append(f"{rel}:{node.lineno} raises {name}")
    assert found == []


def test_old_catches_still_work_for_the_translated_errors() -> None:
    with pytest.raises(ValueError, match="empty") as bad_pattern:
        compile_pattern("")
    assert isinstance(bad_pattern.value, InvalidQueryError)

    class A(Payload):
        type_name = "a"

    class B(Payload):
        type_name = "a"

    registry = MessageRegistry(A)
    with pytest.raises(ConfigError, match="registered twice"):
        registry.register(B)

    with pytest.raises(ValueError, match="at least one broker") as no_broker:
        BrokerSelector([], failover_after_seconds=1.0)
    assert isinstance(no_broker.value, ConfigError)


def test_a_foreign_error_is_chained_as_the_cause(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError) as raised:
        open_database(blocker / "events.db", StoreSettings())
    assert isinstance(raised.value.__cause__, OSError)
