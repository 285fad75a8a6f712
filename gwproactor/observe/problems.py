"""Collecting errors and warnings, and reporting them as one problem event."""

from __future__ import annotations

from typing import ClassVar, Literal

from gwproactor.observe._format import format_exceptions
from gwproactor.wire.message import Event

__all__ = ("ProblemEvent", "Problems")


class ProblemEvent(Event):
    """Something went wrong that an operator should see; stored and sent upstream."""

    type_name: ClassVar[str] = "gw.problem"
    problem_type: Literal["error", "warning"]
    summary: str
    details: str = ""


class Problems(Exception):
    """Errors and warnings gathered while doing several things (stopping parts, loading
    actors), reported together instead of stopping at the first; also raisable, as in the
    reference: ``raise Problems(msg="...", errors=[...])``.

    At most ``max_problems`` errors and as many warnings are kept (None: no bound); later
    ones are counted in ``dropped`` only.
    """

    MAX_PROBLEMS: ClassVar[int] = 10

    def __init__(
        self,
        msg: str = "",
        warnings: list[BaseException] | None = None,
        errors: list[BaseException] | None = None,
        max_problems: int | None = MAX_PROBLEMS,
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.errors: list[BaseException] = []
        self.warnings: list[BaseException] = []
        self.max_problems = max_problems
        self.dropped = 0
        for error in errors or ():
            self.add_error(error)
        for warning in warnings or ():
            self.add_warning(warning)

    def __bool__(self) -> bool:
        return bool(self.errors or self.warnings)

    def _room(self, kept: list[BaseException]) -> bool:
        if self.max_problems is None or len(kept) < self.max_problems:
            return True
        self.dropped += 1
        return False

    def add_error(self, error: BaseException) -> Problems:
        if self._room(self.errors):
            self.errors.append(error)
        return self

    def add_warning(self, warning: BaseException) -> Problems:
        if self._room(self.warnings):
            self.warnings.append(warning)
        return self

    def add_problems(self, other: Problems) -> Problems:
        for e in other.errors:
            self.add_error(e)
        for w in other.warnings:
            self.add_warning(w)
        return self

    def __str__(self) -> str:
        head = f"{self.msg}: " if self.msg else ""
        return f"{head}{len(self.errors)} errors, {len(self.warnings)} warnings"

    def __repr__(self) -> str:
        return (
            f"Problems(msg={self.msg!r}, errors={len(self.errors)}, warnings={len(self.warnings)})"
        )

    def details(self, *, tracebacks: bool = False) -> str:
        parts = []
        if self.errors:
            parts.append("Errors:\n" + format_exceptions(self.errors, tracebacks=tracebacks))
        if self.warnings:
            parts.append("Warnings:\n" + format_exceptions(self.warnings, tracebacks=tracebacks))
        return "\n".join(parts)

    def error_traceback_str(self) -> str:
        """:meth:`details` with every traceback (the reference's name)."""
        return self.details(tracebacks=True)

    def problem_event(self, summary: str, src: str = "") -> ProblemEvent:
        return ProblemEvent(
            src=src,
            problem_type="error" if self.errors else "warning",
            summary=summary,
            details=self.details(),
        )
