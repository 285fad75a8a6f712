"""Where a gateway keeps its files: XDG base directories, or systemd's directories.

Resolution for the state directory (store, logs), first match wins:
an explicit ``paths.state_dir`` setting; ``$STATE_DIRECTORY`` (set by systemd's
``StateDirectory=``); ``$XDG_STATE_HOME/gwproactor/<gateway>``;
``~/.local/state/gwproactor/<gateway>``.
The config directory follows the same pattern with ``$CONFIGURATION_DIRECTORY`` and
``$XDG_CONFIG_HOME``. Nothing here touches the disk; ``ensure()`` creates directories.
"""

import os
from pathlib import Path

from pydantic import BaseModel, Field

__all__ = ("PathSettings", "ResolvedPaths")

APP = "gwproactor"


class PathSettings(BaseModel):
    """Overrides for the gateway's directories (empty: derive from XDG / systemd)."""

    state_dir: Path | None = Field(default=None, description="store and logs live here")
    config_dir: Path | None = Field(default=None, description="where `run` looks for config")

    def resolve(self, gateway: str) -> "ResolvedPaths":
        return ResolvedPaths(
            state_dir=self.state_dir
            or _systemd_dir("STATE_DIRECTORY")
            or _xdg("XDG_STATE_HOME", ".local/state") / APP / gateway,
            config_dir=self.config_dir
            or _systemd_dir("CONFIGURATION_DIRECTORY")
            or _xdg("XDG_CONFIG_HOME", ".config") / APP,
        )


class ResolvedPaths(BaseModel):
    state_dir: Path
    config_dir: Path

    @property
    def store_file(self) -> Path:
        return self.state_dir / "events.db"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    def ensure(self) -> None:
        """Create the state and log directories (mode 0700: the store may hold private data)."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


def _systemd_dir(variable: str) -> Path | None:
    # systemd may pass several colon-separated directories; the first is ours.
    value = os.environ.get(variable, "")
    return Path(value.split(":")[0]) if value else None


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback
