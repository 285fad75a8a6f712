"""Settings: models, paths and loading."""

from gwproactor.config._loader import (
    SettingsSources,
    describe_sources,
    load_settings,
    load_settings_with_sources,
)
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
