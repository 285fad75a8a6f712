"""``gwproactor run``: one gateway, until SIGTERM or SIGINT.

Every expected start-up failure (a bad or unreadable config or env file, a TLS file that is
missing, a web port in use, a state directory that cannot be used, a store written by a newer
version, an actor that refuses its options) ends the command with one line on stderr naming
the cause and the file or setting, and exit code :data:`EXIT_CONFIG` (2), never a traceback:
under systemd that line is what ``journalctl`` shows, and the unit does not restart on 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

from gwproactor.cli._preflight import preflight
from gwproactor.config import ProactorSettings, load_settings
from gwproactor.errors import ConfigError, ProactorError
from gwproactor.observe.logging_setup import (
    log_uncaught,
    resolve_format,
    setup_logging,
    stream_handler,
)
from gwproactor.runtime.proactor import Proactor
from gwproactor.wire.registry import default_registry

__all__ = ("EXIT_CONFIG", "EXIT_FAILED", "check_env_file", "fail", "run_command")

EXIT_CONFIG = 2  # an expected start-up failure: fix the config or the machine, do not restart
EXIT_FAILED = 1  # the gateway failed after it started


class StartupError(Exception):
    """A start-up failure already phrased for the operator."""


def fail(message: str) -> None:
    """One line on stderr (with the journal's error priority under systemd)."""
    line = " | ".join(part.strip() for part in message.splitlines() if part.strip())
    prefix = "<3>" if os.environ.get("JOURNAL_STREAM") else ""
    sys.stderr.write(f"{prefix}gwproactor: {line}\n")
    sys.stderr.flush()


def check_env_file(env_file: Path | None) -> Path | None:
    """The env file to read: an explicit one must exist and be readable (ConfigError);
    without one, ``./.env`` is read if it exists."""
    if env_file is None:
        default = Path(".env")
        return default if default.is_file() else None
    try:
        with env_file.open("rb"):
            pass
    except FileNotFoundError as e:
        raise ConfigError(f"--env-file {env_file} does not exist") from e
    except PermissionError as e:
        raise ConfigError(f"--env-file {env_file} is not readable by uid {os.geteuid()}") from e
    except OSError as e:
        raise ConfigError(f"--env-file {env_file} cannot be read: {e.strerror or e}") from e
    return env_file


def run_command(
    config: Path,
    env_file: Path | None,
    log_level: str | None,
    console: Console,
    log_format: str | None = None,
) -> int:
    try:
        settings = _load(config, env_file, log_level, log_format)
        proactor = _construct(settings, config)
        handlers = _setup_logging(proactor, settings, console)
    except StartupError as e:
        fail(str(e))
        return EXIT_CONFIG
    rich = _is_rich(settings)
    # Off a terminal, a thread's uncaught exception and Python warnings are log records
    # too (one line each), not multi-line dumps on stderr.
    restore = _nothing if rich else log_uncaught(logging.getLogger("gwproactor"))
    try:
        return asyncio.run(_run(proactor, config, console if rich else None))
    finally:
        restore()
        root = logging.getLogger()
        for added in handlers:
            root.removeHandler(added)
            added.close()


def _nothing() -> None:
    pass


def _load(
    config: Path, env_file: Path | None, log_level: str | None, log_format: str | None
) -> ProactorSettings:
    overrides: dict[str, Any] = {}
    logging_overrides = {"level": log_level, "format": log_format}
    if any(logging_overrides.values()):
        overrides["logging"] = {k: v for k, v in logging_overrides.items() if v}
    try:
        return load_settings(config, check_env_file(env_file), **overrides)
    except ConfigError as e:
        raise StartupError(f"configuration error in {config}: {e}") from e


def _construct(settings: ProactorSettings, config: Path) -> Proactor:
    problems = preflight(settings)
    if problems:
        raise StartupError(f"cannot start {settings.name} ({config}): " + "; ".join(problems))
    try:
        return Proactor(settings, default_registry())
    except (ProactorError, ValueError) as e:
        raise StartupError(f"cannot start {settings.name} ({config}): {e}") from e


def _is_rich(settings: ProactorSettings) -> bool:
    return resolve_format(settings.logging.format, sys.stdout) == "rich"


def _setup_logging(
    proactor: Proactor, settings: ProactorSettings, console: Console
) -> list[logging.Handler]:
    fmt = resolve_format(settings.logging.format, sys.stdout)
    handler: logging.Handler
    if fmt == "rich":
        handler = RichHandler(console=console, show_path=False)
    else:
        handler = stream_handler(fmt, sys.stdout)
    try:
        proactor.paths.ensure()
        return setup_logging(
            settings.logging,
            proactor.paths.log_dir,
            logger=proactor.logger,
            console=handler,
            root=True,
        )
    except OSError as e:
        raise StartupError(
            f"paths.state_dir {proactor.paths.state_dir} cannot be used: {e.strerror or e}"
        ) from e


async def _run(proactor: Proactor, config: Path, console: Console | None) -> int:
    """The gateway until it stops; on a terminal, a progress bar while a backlog drains."""
    progress = None
    if console is not None and console.is_terminal:
        from gwproactor.cli._progress import show_backlog_progress

        progress = asyncio.create_task(show_backlog_progress(proactor, console))
    try:
        await proactor.run_forever()
    except (ProactorError, OSError) as e:
        started = proactor.uptime_seconds > 0
        what = "failed" if started else "cannot start"
        logging.getLogger("gwproactor.lifecycle").debug("%s %s", what, proactor.name, exc_info=e)
        fail(f"{what} {proactor.name} ({config}): {_describe(e)}")
        return EXIT_FAILED if started else EXIT_CONFIG
    finally:
        if progress is not None:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
    return 0


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename:
        return f"{error.strerror or type(error).__name__}: {error.filename}"
    return str(error) or type(error).__name__
