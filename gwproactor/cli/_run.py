"""``gwproactor run``: one gateway, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from gwproactor.actors_registry import default_registry
from gwproactor.config import load_settings
from gwproactor.errors import ConfigError
from gwproactor.logging_setup import setup_logging
from gwproactor.proactor import Proactor


def run_command(config: Path, env_file: Path, log_level: str | None, console: Console) -> int:
    try:
        overrides = {"logging": {"level": log_level}} if log_level else {}
        settings = load_settings(config, env_file, **overrides)
        proactor = Proactor(settings, default_registry())
    except ConfigError as e:
        where = escape(str(config))
        console.print(f"[red]configuration error[/red] in {where}:\n{escape(str(e))}")
        return 2
    try:
        proactor.paths.ensure()
        handlers = setup_logging(
            settings.logging,
            proactor.paths.log_dir,
            logger=proactor.logger,
            console=RichHandler(console=console, show_path=False),
        )
    except OSError as e:
        console.print(
            f"[red]configuration error[/red] in {escape(str(config))}: paths.state_dir "
            f"{escape(str(proactor.paths.state_dir))} cannot be used: {escape(str(e))}"
        )
        return 2
    try:
        asyncio.run(proactor.run_forever())
    finally:
        for handler in handlers:
            proactor.logger.general.removeHandler(handler)
            handler.close()
    return 0
