"""Category loggers: message summaries, lifecycle, comm events.

Each category is a child of the ``gwproactor`` logger with its own level, so an operator can
turn on one line per message (``message_summary`` at INFO) without drowning in the rest.
"""

from __future__ import annotations

import logging

from gwproactor.errors import ConfigError

__all__ = ("ProactorLogger",)

BASE = "gwproactor"


class ProactorLogger:
    """The loggers a gateway writes to. Cheap to construct; no handlers are added here
    (see :func:`gwproactor.observe.logging_setup.setup_logging`)."""

    def __init__(self, base: str = BASE) -> None:
        self.base = base
        self.general = logging.getLogger(base)
        self.message_summary = logging.getLogger(f"{base}.message_summary")
        self.lifecycle = logging.getLogger(f"{base}.lifecycle")
        self.comm_event = logging.getLogger(f"{base}.comm_event")

    def child(self, name: str) -> logging.Logger:
        """A logger for one part (``link.upstream``, ``actor.relay1``)."""
        return logging.getLogger(f"{self.base}.{name}")

    @property
    def message_summary_enabled(self) -> bool:
        return self.message_summary.isEnabledFor(logging.INFO)

    def summarize(self, direction: str, link: str, topic: str, message_id: str) -> None:
        """One line per message (only computed when the category is at INFO)."""
        if self.message_summary.isEnabledFor(logging.INFO):
            self.message_summary.info("%-3s %-12s %s [%s]", direction, link, topic, message_id)

    def set_levels(
        self, general: str, message_summary: str, lifecycle: str, comm_event: str
    ) -> None:
        self.general.setLevel(general.upper())
        self.message_summary.setLevel(message_summary.upper())
        self.lifecycle.setLevel(lifecycle.upper())
        self.comm_event.setLevel(comm_event.upper())

    def set_category_level(self, category: str, level: str) -> None:
        """Set one category's level (``general``, ``message_summary``, ``lifecycle``,
        ``comm_event``). Raises ConfigError for an unknown category, ValueError for an
        unknown level."""
        logger = {
            "general": self.general,
            "message_summary": self.message_summary,
            "lifecycle": self.lifecycle,
            "comm_event": self.comm_event,
        }.get(category)
        if logger is None:
            raise ConfigError(f"unknown log category {category!r}")
        logger.setLevel(level.upper())

    def levels(self) -> dict[str, str]:
        return {
            name: logging.getLevelName(lg.getEffectiveLevel())
            for name, lg in (
                ("general", self.general),
                ("message_summary", self.message_summary),
                ("lifecycle", self.lifecycle),
                ("comm_event", self.comm_event),
            )
        }
