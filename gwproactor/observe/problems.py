"""Collecting errors and warnings, and reporting them as one problem event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from gwproactor.observe.logging_setup import format_exceptions
from gwproactor.wire.message import Event

__all__ = ("ProblemEvent", "Problems")


class ProblemEvent(Event):
    """Something went wrong that an operator should see; stored and sent upstream."""

    type_name: ClassVar[str] = "gw.problem"
    problem_type: Literal["error", "warning"]
    summary: str
    details: str = ""


@dataclass
class Problems:
    """Errors and warnings gathered while doing several things (stopping parts, loading
    actors), reported together instead of stopping at the first."""

    errors: list[BaseException] = field(default_factory=list)
    warnings: list[BaseException] = field(default_factory=list)
    max_problems: int = 100

    def __bool__(self) -> bool:
        return bool(self.errors or self.warnings)

    def add_error(self, error: BaseException) -> Problems:
        if len(self.errors) < self.max_problems:
            self.errors.append(error)
        return self

    def add_warning(self, warning: BaseException) -> Problems:
        if len(self.warnings) < self.max_problems:
            self.warnings.append(warning)
        return self

    def add_problems(self, other: Problems) -> Problems:
        for e in other.errors:
            self.add_error(e)
        for w in other.warnings:
            self.add_warning(w)
        return self

    def __str__(self) -> str:
        return f"Problems: {len(self.errors)} errors, {len(self.warnings)} warnings"

    def details(self, *, tracebacks: bool = False) -> str:
        parts = []
        if self.errors:
            parts.append("Errors:\n" + format_exceptions(self.errors, tracebacks=tracebacks))
        if self.warnings:
            parts.append("Warnings:\n" + format_exceptions(self.warnings, tracebacks=tracebacks))
        return "\n".join(parts)

    def problem_event(self, summary: str, src: str = "") -> ProblemEvent:
        return ProblemEvent(
            src=src,
            problem_type="error" if self.errors else "warning",
            summary=summary,
            details=self.details(),
        )
