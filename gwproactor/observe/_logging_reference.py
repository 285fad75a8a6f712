"""The reference's ``setup_logging(args, settings, errors, add_screen_handler,
root_gets_handlers)``, as a thin adapter over the native
:func:`gwproactor.observe.logging_setup.setup_logging`."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from gwproactor.config import ProactorSettings

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from gwproactor.config import LoggingSettings

__all__ = ("setup_logging_from_args",)

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging_from_args(
    native: Callable[..., list[logging.Handler]],
    args: argparse.Namespace,
    settings: ProactorSettings,
    errors: list[BaseException] | None,
    add_screen_handler: bool,
    root_gets_handlers: bool,
) -> list[logging.Handler]:
    """Levels and the log file from ``settings`` (the file in the gateway's log directory),
    overridden by the command line: ``args.verbose`` sets every category to DEBUG,
    ``args.message_summary`` turns message summaries on (INFO). ``add_screen_handler``
    adds a plain stderr handler; ``root_gets_handlers`` attaches the handlers to the root
    logger instead of ``gwproactor``'s. An error is appended to ``errors`` when a list is
    given, else raised. Returns the handlers added."""
    try:
        logging_settings: LoggingSettings = settings.logging
        updates: dict[str, str] = {}
        if getattr(args, "verbose", False):
            updates = {
                "level": "DEBUG",
                "message_summary_level": "DEBUG",
                "lifecycle_level": "DEBUG",
                "comm_event_level": "DEBUG",
            }
        elif getattr(args, "message_summary", False):
            updates = {"message_summary_level": "INFO"}
        logging_settings = logging_settings.model_copy(update=updates)
        console: logging.Handler | None = None
        if add_screen_handler:
            console = logging.StreamHandler()
            console.setFormatter(logging.Formatter(_FORMAT))
        log_dir: Path = settings.paths.resolve(settings.name).log_dir
        handlers = native(logging_settings, log_dir, console=console, root=root_gets_handlers)
    except Exception as e:
        if errors is None:
            raise
        errors.append(e)
        return []
    return handlers
