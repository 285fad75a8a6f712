"""Settings: models, paths and loading.

The loader (files, environment, pydantic-settings) loads on first use: a gateway configured
in code does not pay for it at start-up.
"""

from typing import TYPE_CHECKING, Any

from gwproactor.config._paths import PathSettings, ResolvedPaths
from gwproactor.config._settings import (
    ENV_PREFIX,
    QOS,
    ActorSettings,
    BrokerSettings,
    LinkRole,
    LinkSettings,
    LoggingSettings,
    MqttProtocol,
    ProactorSettings,
    TlsSettings,
    WatchdogSettings,
    WebSettings,
)

if TYPE_CHECKING:
    from gwproactor.config._loader import (
        SettingsSources,
        describe_sources,
        load_settings,
        load_settings_with_sources,
    )

__all__ = (
    "ENV_PREFIX",
    "QOS",
    "ActorSettings",
    "BrokerSettings",
    "LinkRole",
    "LinkSettings",
    "LoggingSettings",
    "MqttProtocol",
    "PathSettings",
    "ProactorSettings",
    "ResolvedPaths",
    "SettingsSources",
    "TlsSettings",
    "WatchdogSettings",
    "WebSettings",
    "describe_sources",
    "load_settings",
    "load_settings_with_sources",
)

_LOADER_NAMES = frozenset(
    ("SettingsSources", "describe_sources", "load_settings", "load_settings_with_sources")
)


def __getattr__(name: str) -> Any:
    if name in _LOADER_NAMES:
        from gwproactor.config import _loader

        return getattr(_loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
