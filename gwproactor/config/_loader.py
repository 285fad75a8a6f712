"""Loading :class:`ProactorSettings` from its sources, with errors that name the source.

Precedence, highest first (documented in the README):

1. keyword arguments given to :func:`load_settings` (the command line uses these);
2. the process environment: ``GWPROACTOR_NAME``, ``GWPROACTOR_LINKS__UPSTREAM__BROKER__PORT``;
3. the ``.env`` file (same names);
4. the TOML config file;
5. the defaults in the models.

Nested values merge key by key across sources, so an environment variable can override one
field of a link that the config file defines.
"""

from __future__ import annotations

import functools
import importlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gwproactor.config._settings import ENV_NESTED_DELIMITER, ENV_PREFIX, ProactorSettings
from gwproactor.errors import ConfigError

_SECRET_RE = re.compile(r"password|token|secret", re.IGNORECASE)

__all__ = ("SettingsSources", "describe_sources", "load_settings")


@dataclass(frozen=True)
class _Source:
    label: str  # how an error message names it
    kind: str  # "argument", "env", "dotenv", "file"
    values: dict[str, Any]


@dataclass(frozen=True)
class SettingsSources:
    """The raw values each source gave, highest precedence first (for ``gwproactor config``)."""

    sources: tuple[_Source, ...]

    def origin(self, loc: tuple[str | int, ...]) -> str:
        """Which source gave the value at ``loc`` ("default" if none did)."""
        for source in self.sources:
            if _has_path(source.values, loc):
                return _describe(source, loc)
        return "default"


def load_settings(
    config_file: Path | str | None = None,
    env_file: Path | str | None = ".env",
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ProactorSettings:
    """Load settings from every source. Raises ConfigError whose message names each bad
    field, what was wrong, and the source that gave the value (file, ``.env``, the
    environment variable, or an argument). ``environ`` replaces ``os.environ`` (tests)."""
    return load_settings_with_sources(config_file, env_file, environ=environ, **overrides)[0]


def load_settings_with_sources(
    config_file: Path | str | None = None,
    env_file: Path | str | None = ".env",
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> tuple[ProactorSettings, SettingsSources]:
    sources = describe_sources(config_file, env_file, environ=environ, overrides=overrides)
    merged: dict[str, Any] = {}
    for source in reversed(sources.sources):
        _deep_merge(merged, source.values)
    try:
        settings = ProactorSettings.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(_explain(e, sources)) from e
    _check_actor_classes(settings, sources)
    return settings, sources


def _check_actor_classes(settings: ProactorSettings, sources: SettingsSources) -> None:
    """Each actor's class must import, so that ``gwproactor config`` catches a typo and
    names the field and its source (rather than the gateway failing at start)."""
    problems = []
    for name, actor in settings.actors.items():
        spec = actor.cls
        module_name, _, class_name = spec.partition(":") if ":" in spec else spec.rpartition(".")
        reason = ""
        if not module_name or not class_name:
            reason = "is not 'package.module:Class'"
        else:
            try:
                module = importlib.import_module(module_name)
            except ImportError as e:
                reason = f"cannot import {module_name}: {e}"
            else:
                if not isinstance(getattr(module, class_name, None), type):
                    reason = f"{module_name} has no class {class_name}"
        if reason:
            origin = sources.origin(("actors", name, "class"))
            problems.append(f"  actors.{name}.class: {spec!r} {reason} [from {origin}]")
    if problems:
        raise ConfigError("\n".join([f"{len(problems)} invalid actor class(es):", *problems]))


def describe_sources(
    config_file: Path | str | None = None,
    env_file: Path | str | None = ".env",
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> SettingsSources:
    """Read every source without validating the result. Raises ConfigError for a config file
    that is missing or not valid TOML, or an environment value that cannot be parsed."""
    from pydantic_settings import DotEnvSettingsSource, SettingsError

    found: list[_Source] = []
    if overrides:
        found.append(_Source("argument", "argument", dict(overrides)))
    settings_cls = _loadable()
    where = "the environment"
    try:
        env = _env_source(settings_cls, environ)
        found.append(_Source("environment", "env", env()))
        if env_file is not None and Path(env_file).is_file():
            where = f".env file {env_file}"
            dotenv = DotEnvSettingsSource(settings_cls, env_file=Path(env_file))
            found.append(_Source(where, "dotenv", dotenv()))
    except SettingsError as e:
        # pydantic-settings names its own class ("from source EnvSettingsSource"); name the
        # variable the operator wrote instead.
        match = re.search(r'field "([^"]+)"', str(e))
        field = match.group(1) if match else "?"
        variable = ENV_PREFIX + field.upper()
        raise ConfigError(
            f"cannot parse {variable} (setting {field}) from {where}: a nested setting "
            "given as one variable "
            f"must be JSON (or set its fields one by one with '__', e.g. {ENV_PREFIX}"
            "LINKS__UP__PEER)"
        ) from e
    if config_file is not None:
        found.append(_Source(f"config file {config_file}", "file", _read_toml(Path(config_file))))
    return SettingsSources(tuple(found))


@functools.cache
def _loadable() -> type[Any]:
    """ProactorSettings as a pydantic-settings ``BaseSettings``, for the sources to read
    (prefix, nested delimiter); validation itself uses :class:`ProactorSettings`."""
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class LoadableSettings(ProactorSettings, BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, extra="forbid"
        )

    return LoadableSettings


def _env_source(settings_cls: type[Any], environ: Mapping[str, str] | None) -> Any:
    """The environment source, reading ``environ`` instead of os.environ if given."""
    from pydantic_settings import EnvSettingsSource

    source = EnvSettingsSource(settings_cls)
    if environ is not None:
        source.env_vars = {k.lower(): v for k, v in environ.items()}
    return source


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text: {e}") from e
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e}") from e


def _explain(error: ValidationError, sources: SettingsSources) -> str:
    lines = [f"{error.error_count()} invalid setting(s):"]
    for item in error.errors():
        loc = tuple(item["loc"])
        field = ".".join(str(p) for p in loc) or "(settings)"
        value = ""
        if item["type"] != "missing" and loc:
            given = item.get("input")
            if any(isinstance(p, str) and _SECRET_RE.search(p) for p in loc):
                # Never echo a secret, even a malformed one: only say what type it was.
                value = f" (got a {type(given).__name__})"
            else:
                value = f" (got {_short(given)})"
        if item["type"] == "missing":
            origin = "no source gave it"
        elif not loc:
            origin = "the settings as a whole"
        else:
            origin = sources.origin(loc)
        lines.append(f"  {field}: {item['msg']}{value} [from {origin}]")
    return "\n".join(lines)


def _describe(source: _Source, loc: tuple[str | int, ...]) -> str:
    if source.kind in ("env", "dotenv"):
        variable = ENV_PREFIX + "__".join(str(p) for p in loc).upper()
        return f"{source.label}: {variable}"
    return source.label


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _has_path(values: Mapping[str, Any], loc: tuple[str | int, ...]) -> bool:
    if loc and loc[-1] == "[key]":  # pydantic's location for a bad dict key
        loc = loc[:-1]
    node: Any = values
    for part in loc:
        if isinstance(part, int) and isinstance(node, list | tuple):
            if not 0 <= part < len(node):
                return False
            node = node[part]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, Mapping) and isinstance(part, str) and part.lower() in node:
            node = node[part.lower()]
        else:
            return False
    return True


def _deep_merge(into: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = {}
            _deep_merge(into[key], value)
        else:
            into[key] = value
