"""Where the example configs and the systemd unit are: the repository's ``config/`` folder in
a checkout, ``gwproactor/examples/`` in an installed wheel (see setup.py)."""

from __future__ import annotations

from pathlib import Path

__all__ = ("examples_dir",)

_PACKAGE = Path(__file__).resolve().parents[1]


def examples_dir() -> Path | None:
    """The folder holding ``parent.toml``, ``child.toml`` and ``gwproactor@.service``."""
    for candidate in (_PACKAGE.parent / "config", _PACKAGE / "examples"):
        if (candidate / "parent.toml").is_file():
            return candidate
    return None
