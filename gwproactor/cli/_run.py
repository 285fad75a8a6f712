"""``gwproactor run``: one gateway, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from gwproactor.config import load_settings
from gwproactor.errors import ConfigError
from gwproactor.observe.logging_setup import resolve_format, setup_logging, stream_handler
from gwproactor.runtime.proactor import Proactor
from gwproactor.wire.registry import default_registry


def run_command(
    config: Path,
    env_file: Path,
    log_level: str | None,
    console: Console,
    log_format: str | None = None,
) -> int:
    try:
        overrides: dict[str, Any] = {}
        logging_overrides = {"level": log_level, "format": log_format}
        if any(logging_overrides.values()):
            overrides["logging"] = {k: v for k, v in logging_overrides.items() if v}
        settings = load_settings(config, env_file, **overrides)
        proactor = Proactor(settings, default_registry())
    except ConfigError as e:
        where = escape(str(config))
        console.print(f"[red]configuration error[/red] in {where}:\n{escape(str(e))}")
        return 2
    fmt = resolve_format(settings.logging.format, sys.stdout)
    handler: logging.Handler
    if fmt == "rich":
        handler = RichHandler(console=console, show_path=False)
    else:
        handler = stream_handler(fmt, sys.stdout)
    try:
        proactor.paths.ensure()
        handlers = setup_logging(
            settings.logging,
            proactor.paths.log_dir,
            logger=proactor.logger,
            console=handler,
            root=True,
        )
    except OSError as e:
        console.print(
            f"[red]configuration error[/red] in {escape(str(config))}: paths.state_dir "
            f"{escape(str(proactor.paths.state_dir))} cannot be used: {escape(str(e))}"
        )
        return 2
    try:
        asyncio.run(_run(proactor, console if fmt == "rich" else None))
    finally:
        root = logging.getLogger()
        for added in handlers:
            root.removeHandler(added)
            added.close()
    return 0


async def _run(proactor: Proactor, console: Console | None) -> None:
    """The gateway until it stops; on a terminal, a progress bar while a backlog drains."""
    progress = None
    if console is not None and console.is_terminal:
        from gwproactor.cli._progress import show_backlog_progress

        progress = asyncio.create_task(show_backlog_progress(proactor, console))
    try:
        await proactor.run_forever()
    finally:
        if progress is not None:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
