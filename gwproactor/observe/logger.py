"""Category loggers: message summaries, lifecycle, comm events.

Each category is a child of the ``gwproactor`` logger with its own level, so an operator can
turn on one line per message (``message_summary`` at INFO) without drowning in the rest.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from gwproactor.errors import ConfigError

__all__ = ("ProactorLogger",)

BASE = "gwproactor"


class ProactorLogger:
    """The loggers a gateway writes to. Cheap to construct; no handlers are added here
    (see :func:`gwproactor.observe.logging_setup.setup_logging`).

    ``general`` and the ``*_logger`` attributes are plain :class:`logging.Logger` s; the
    category methods (``lifecycle("...")``, ``comm_event("...")``) log at INFO on theirs,
    and the ``*_enabled`` properties say whether a call would be written, so that costly
    arguments can be skipped. ``ProactorLogger(base, message_summary, lifecycle,
    comm_event, extra)`` names the category loggers as in the reference (by default they
    are ``<base>.message_summary``, ``<base>.lifecycle`` and ``<base>.comm_event``);
    ``extra`` is added to every record the category methods write.
    """

    MESSAGE_DELIMITER_WIDTH: ClassVar[int] = 88
    MESSAGE_ENTRY_DELIMITER: ClassVar[str] = "+" * MESSAGE_DELIMITER_WIDTH
    MESSAGE_EXIT_DELIMITER: ClassVar[str] = "-" * MESSAGE_DELIMITER_WIDTH

    def __init__(
        self,
        base: str = BASE,
        message_summary: str | None = None,
        lifecycle: str | None = None,
        comm_event: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.base = base
        self.extra = dict(extra) if extra else None
        self.general = logging.getLogger(base)
        self.message_summary_logger = logging.getLogger(
            message_summary or f"{base}.message_summary"
        )
        self.lifecycle_logger = logging.getLogger(lifecycle or f"{base}.lifecycle")
        self.comm_event_logger = logging.getLogger(comm_event or f"{base}.comm_event")

    def child(self, name: str) -> logging.Logger:
        """A logger for one part (``link.upstream``, ``actor.relay1``)."""
        return logging.getLogger(f"{self.base}.{name}")

    # -- the reference's category methods (INFO on the category's logger) ------------------

    def lifecycle(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._info(self.lifecycle_logger, msg, args, kwargs)

    def comm_event(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._info(self.comm_event_logger, msg, args, kwargs)

    def path(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """A message's path through the gateway, for debugging: DEBUG on the
        message-summary logger."""
        if self.path_enabled:
            kwargs.setdefault("stacklevel", 2)
            self._log(self.message_summary_logger, logging.DEBUG, msg, args, kwargs)

    def message_enter(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Open a block of :meth:`path` lines (a delimiter line, then ``msg``)."""
        if self.path_enabled:
            self.path(self.MESSAGE_ENTRY_DELIMITER)
            self.path(msg, *args, **kwargs)

    def message_exit(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Close a block of :meth:`path` lines (``msg``, then a delimiter line)."""
        if self.path_enabled:
            self.path(msg, *args, **kwargs)
            self.path(self.MESSAGE_EXIT_DELIMITER)

    def message_summary(
        self,
        direction: str,
        actor_alias: str,
        topic: str,
        payload_object: Any = None,
        broker_flag: str = " ",
        timestamp: datetime.datetime | None = None,
        message_id: str = "",
    ) -> None:
        """One line for one message (computed only when the category is at INFO):
        time, direction (``IN``/``OUT``), broker flag, who, topic, message id, and the
        payload's type name."""
        if not self.message_summary_enabled:
            return
        when = (timestamp or datetime.datetime.now(tz=datetime.UTC)).isoformat()
        what = type(payload_object).__name__ if payload_object is not None else ""
        self._info(
            self.message_summary_logger,
            "%s %-3s%s %-12s %s [%s] %s",
            (when, direction, broker_flag, actor_alias, topic, message_id, what),
            {},
        )

    # -- enabled checks ---------------------------------------------------------------------

    @property
    def general_enabled(self) -> bool:
        return self.general.isEnabledFor(logging.INFO)

    @property
    def message_summary_enabled(self) -> bool:
        return self.message_summary_logger.isEnabledFor(logging.INFO)

    @property
    def lifecycle_enabled(self) -> bool:
        return self.lifecycle_logger.isEnabledFor(logging.INFO)

    @property
    def comm_event_enabled(self) -> bool:
        return self.comm_event_logger.isEnabledFor(logging.INFO)

    @property
    def path_enabled(self) -> bool:
        return self.message_summary_logger.isEnabledFor(logging.DEBUG)

    # -- levels -----------------------------------------------------------------------------

    def set_levels(
        self, general: str, message_summary: str, lifecycle: str, comm_event: str
    ) -> None:
        self.general.setLevel(general.upper())
        self.message_summary_logger.setLevel(message_summary.upper())
        self.lifecycle_logger.setLevel(lifecycle.upper())
        self.comm_event_logger.setLevel(comm_event.upper())

    def set_category_level(self, category: str, level: str) -> None:
        """Set one category's level (``general``, ``message_summary``, ``lifecycle``,
        ``comm_event``). Raises ConfigError for an unknown category, ValueError for an
        unknown level."""
        logger = self._categories().get(category)
        if logger is None:
            raise ConfigError(f"unknown log category {category!r}")
        logger.setLevel(level.upper())

    def levels(self) -> dict[str, str]:
        return {
            name: logging.getLevelName(lg.getEffectiveLevel())
            for name, lg in self._categories().items()
        }

    def _categories(self) -> dict[str, logging.Logger]:
        return {
            "general": self.general,
            "message_summary": self.message_summary_logger,
            "lifecycle": self.lifecycle_logger,
            "comm_event": self.comm_event_logger,
        }

    def _info(
        self, logger: logging.Logger, msg: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if logger.isEnabledFor(logging.INFO):
            kwargs.setdefault("stacklevel", 3)
            self._log(logger, logging.INFO, msg, args, kwargs)

    def _log(
        self,
        logger: logging.Logger,
        level: int,
        msg: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        if self.extra:
            kwargs["extra"] = {**self.extra, **kwargs.get("extra", {})}
        logger.log(level, msg, *args, **kwargs)
