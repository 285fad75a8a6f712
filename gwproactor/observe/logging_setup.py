"""Process-wide logging setup: a console made for where it is read, and an optional file.

Console formats (``logging.format``, ``gwproactor run --log-format``):

- ``rich``: colours and columns, for a person at a terminal (made by the command line, which
  owns rich; this module never imports it).
- ``plain``: ``<time> <LEVEL> <logger>: <message>``, one line per record whatever it holds
  (newlines in messages and tracebacks are folded into `` | ``), no padding, no wrapping.
- ``journal``: as ``plain`` but each line starts with its sd-daemon priority (``<3>`` error,
  ``<4>`` warning, ``<6>`` info, ``<7>`` debug) and carries no time of its own: journald
  stamps it and ``journalctl -p err`` filters by it.
- ``json``: one JSON object per line (time, level, priority, logger, message, exception).

``auto`` picks ``journal`` when ``JOURNAL_STREAM`` is set and the stream is not a terminal
(systemd connected it to the journal), ``rich`` on a terminal, ``plain`` otherwise.

A handler that cannot write (a full disk under the file log, a closed pipe) says so once on
stderr, drops records silently while it keeps failing, and says how many it lost once it
works again: never a ``--- Logging error ---`` traceback per record.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from gwproactor.config import LoggingSettings, ProactorSettings
from gwproactor.errors import ConfigError
from gwproactor.observe._format import format_exceptions
from gwproactor.observe._logging_reference import setup_logging_from_args
from gwproactor.observe.logger import ProactorLogger

__all__ = (
    "JsonFormatter",
    "OneLineFormatter",
    "format_exceptions",
    "log_uncaught",
    "resolve_format",
    "setup_logging",
    "stream_handler",
    "under_systemd",
)

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def priority(levelno: int) -> int:
    """The syslog/sd-daemon priority of a logging level (unknown levels round down)."""
    for level, prio in _PRIORITY.items():
        if levelno >= level:
            return prio
    return 7


def under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs as a systemd service (its output goes to the journal)."""
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def resolve_format(requested: str, stream: TextIO, environ: Mapping[str, str] | None = None) -> str:
    """The console format for ``requested`` (``auto`` decided as the module says)."""
    if requested != "auto":
        return requested
    env = os.environ if environ is None else environ
    terminal = _isatty(stream)
    if env.get("JOURNAL_STREAM") and not terminal:
        return "journal"
    return "rich" if terminal else "plain"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


def _one_line(text: str) -> str:
    return " | ".join(part for part in text.splitlines() if part.strip())


class OneLineFormatter(logging.Formatter):
    """One line per record: newlines folded, the traceback (if any) appended on the line.
    ``journal``: the sd-daemon priority prefix instead of a timestamp."""

    def __init__(self, *, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        if record.stack_info:
            text = f"{text}\n{record.stack_info}"
        body = f"{record.levelname} {record.name}: {_one_line(text)}"
        if self.journal:
            return f"<{priority(record.levelno)}>{body}"
        return f"{self.formatTime(record)} {body}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "priority": priority(record.levelno),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class _ReportsFailureOnce:
    """Mixin for a handler: its first failed write is reported once on stderr (the
    journal, under systemd); later ones are only counted until a write succeeds again."""

    failing = False
    lost = 0

    def handleError(self, record: logging.LogRecord) -> None:
        self.lost += 1
        if self.failing:
            return
        self.failing = True
        error = sys.exc_info()[1]
        _say(
            logging.ERROR,
            f"log handler {self._label()} failed: {error!r}; "
            "records it should write are dropped until it works again",
        )

    def emit(self, record: logging.LogRecord) -> None:
        lost = self.lost
        super().emit(record)  # type: ignore[misc]  # the handler class it is mixed into
        if self.failing and self.lost == lost:
            self.failing = False
            self.lost = 0
            _say(logging.WARNING, f"log handler {self._label()} works again; {lost} lost")

    def _label(self) -> str:
        target = getattr(self, "baseFilename", None)
        return str(target) if target else type(self).__name__


def _say(level: int, text: str) -> None:
    """A line about logging itself, straight to stderr (never through logging)."""
    line = f"{logging.getLevelName(level)} gwproactor.logging: {text}"
    if os.environ.get("JOURNAL_STREAM"):
        line = f"<{priority(level)}>{line}"
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # nowhere left to say it


class _StreamHandler(_ReportsFailureOnce, logging.StreamHandler[TextIO]):
    pass


class _RotatingFileHandler(_ReportsFailureOnce, logging.handlers.RotatingFileHandler):
    pass


def stream_handler(fmt: str, stream: TextIO | None = None) -> logging.Handler:
    """A console handler for ``plain``, ``journal`` or ``json`` on ``stream`` (stdout)."""
    handler = _StreamHandler(sys.stdout if stream is None else stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif fmt in ("plain", "journal"):
        handler.setFormatter(OneLineFormatter(journal=fmt == "journal"))
    else:
        raise ConfigError(f"no plain handler for log format {fmt!r}")
    return handler


def setup_logging(
    settings: LoggingSettings | argparse.Namespace,
    log_dir: Path | ProactorSettings | None,
    errors: list[BaseException] | None = None,
    add_screen_handler: bool = True,
    root_gets_handlers: bool = True,
    *,
    logger: ProactorLogger | None = None,
    console: logging.Handler | None = None,
    file_name: str = "gateway.log",
    environ: Mapping[str, str] | None = None,
    root: bool = False,
) -> list[logging.Handler]:
    """Attach handlers to the ``gwproactor`` logger tree and set the category levels.

    Returns the handlers it added, so that a caller (a test, the CLI) can remove them.
    ``console`` is a handler the caller made (the CLI passes a rich handler on a terminal,
    :func:`stream_handler` otherwise); the library never writes to the terminal by itself.
    The file log is written when ``settings.file_enabled`` says so; unset, it is written
    except under systemd (the journal keeps the console's lines already). ``root``: attach
    the handlers to the root logger, so that a daemon also writes what other libraries and
    user actors log (WARNING and up, unless they set their own levels). Raises OSError if
    ``log_dir`` cannot be created.

    The reference's form ``setup_logging(args, settings, errors, add_screen_handler,
    root_gets_handlers)`` (parsed command line, ProactorSettings) is served by
    :func:`gwproactor.observe._logging_reference.setup_logging_from_args`; those three
    arguments mean nothing in the native form.
    """
    if isinstance(settings, argparse.Namespace):
        if not isinstance(log_dir, ProactorSettings):
            raise TypeError("setup_logging(args, settings): settings must be ProactorSettings")
        return setup_logging_from_args(
            setup_logging, settings, log_dir, errors, add_screen_handler, root_gets_handlers
        )
    if isinstance(log_dir, ProactorSettings):
        raise TypeError("setup_logging(logging_settings, log_dir): log_dir is a Path")
    logger = logger or ProactorLogger()
    logger.set_levels(
        settings.level,
        settings.message_summary_level,
        settings.lifecycle_level,
        settings.comm_event_level,
    )
    file_enabled = settings.file_enabled
    if file_enabled is None:
        file_enabled = not under_systemd(environ)
    added: list[logging.Handler] = []
    if file_enabled and log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = _RotatingFileHandler(
            log_dir / file_name,
            maxBytes=settings.file_max_bytes,
            backupCount=settings.file_backup_count,
            encoding="utf-8",
        )
        file_handler.setFormatter(OneLineFormatter())
        added.append(file_handler)
    if console is not None:
        added.append(console)
    target = logging.getLogger() if root else logger.general
    for handler in added:
        target.addHandler(handler)
    return added


def log_uncaught(logger: logging.Logger) -> Callable[[], None]:
    """Send what would otherwise reach stderr as a multi-line dump through ``logger``: an
    exception that ends a thread (``threading.excepthook``) and Python warnings. Under
    systemd each is then one journal entry with its priority. Returns a function that
    restores the previous hooks."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if issubclass(args.exc_type, SystemExit):
            return
        name = args.thread.name if args.thread is not None else "?"
        exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
        logger.critical("uncaught exception in thread %s", name, exc_info=exc_info)

    threading.excepthook = hook
    logging.captureWarnings(True)

    def restore() -> None:
        threading.excepthook = previous
        logging.captureWarnings(False)

    return restore
