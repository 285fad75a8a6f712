"""Process-wide logging setup: a rotating file per gateway and, optionally, a console."""

from __future__ import annotations

import logging
import logging.handlers
import traceback
from collections.abc import Sequence
from pathlib import Path

from gwproactor.config import LoggingSettings
from gwproactor.observe.logger import ProactorLogger

__all__ = ("format_exceptions", "setup_logging")

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(
    settings: LoggingSettings,
    log_dir: Path | None,
    *,
    logger: ProactorLogger | None = None,
    console: logging.Handler | None = None,
    file_name: str = "gateway.log",
) -> list[logging.Handler]:
    """Attach handlers to the ``gwproactor`` logger tree and set the category levels.

    Returns the handlers it added, so that a caller (a test, the CLI) can remove them.
    ``console`` is a handler the caller made (the CLI passes a rich handler); the library
    never writes to the terminal by itself.
    """
    logger = logger or ProactorLogger()
    logger.set_levels(
        settings.level,
        settings.message_summary_level,
        settings.lifecycle_level,
        settings.comm_event_level,
    )
    added: list[logging.Handler] = []
    if settings.file_enabled and log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            log_dir / file_name,
            maxBytes=settings.file_max_bytes,
            backupCount=settings.file_backup_count,
            encoding="utf-8",
        )
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        added.append(file_handler)
    if console is not None:
        added.append(console)
    for handler in added:
        logger.general.addHandler(handler)
    return added


def format_exceptions(exceptions: Sequence[BaseException], *, tracebacks: bool = True) -> str:
    """One readable block for several exceptions (with tracebacks unless told otherwise)."""
    parts: list[str] = []
    for i, exc in enumerate(exceptions, 1):
        head = f"[{i}/{len(exceptions)}] {type(exc).__name__}: {exc}"
        if tracebacks and exc.__traceback__ is not None:
            body = "".join(traceback.format_exception(exc)).rstrip()
            parts.append(f"{head}\n{body}")
        else:
            parts.append(head)
    return "\n".join(parts)
