"""Figures of the benchmark: min / median / max over the rounds, targets, the final table.

A ratio is computed per round from the two figures measured side by side in that round
(raw paho and gwproactor interleaved), then summarised like any other figure. A target is
judged on the median.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Literal

from _bench_wire import Json

Verdict = Literal["PASS", "FAIL", "", "PENDING", "n/a"]


@dataclass(frozen=True)
class Target:
    op: Literal[">=", "<="]
    limit: float
    unit: str = ""

    def met(self, value: float) -> bool:
        return value >= self.limit if self.op == ">=" else value <= self.limit

    def __str__(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {_number(self.limit)}{self.unit}"


@dataclass
class Figure:
    """One printed row. ``values`` has one entry per round (empty if not measured, with
    the reason in ``pending``)."""

    section: str
    label: str
    unit: str
    values: list[float] = field(default_factory=list)
    target: Target | None = None
    pending: str = ""
    digits: int = 0

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def verdict(self) -> Verdict:
        if self.pending:
            return "PENDING"
        if self.target is None:
            return ""
        median = self.median
        if median is None:
            return "n/a"
        return "PASS" if self.target.met(median) else "FAIL"

    def as_json(self) -> Json:
        return {
            "section": self.section,
            "figure": self.label,
            "unit": self.unit,
            "values": self.values,
            "min": min(self.values) if self.values else None,
            "median": self.median,
            "max": max(self.values) if self.values else None,
            "target": str(self.target) if self.target else None,
            "verdict": self.verdict,
            "pending": self.pending or None,
        }


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Per-round ratios of two paired series (rounds where the denominator is 0 skipped)."""
    return [n / d for n, d in zip(numerators, denominators, strict=True) if d]


def differences(left: list[float], right: list[float]) -> list[float]:
    return [a - b for a, b in zip(left, right, strict=True)]


def _number(value: float, digits: int = 0) -> str:
    if digits == 0 and abs(value) >= 10:
        return f"{value:,.0f}"
    if digits == 0:
        return f"{value:.2f}".rstrip("0").rstrip(".") if value else "0"
    return f"{value:,.{digits}f}"


_HEADER = ("figure", "unit", "min", "median", "max", "target", "verdict")


def render_table(figures: list[Figure]) -> str:
    """The final table, plain text, one block per section."""
    rows: list[tuple[str, ...] | str] = []
    section = ""
    for figure in figures:
        if figure.section != section:
            section = figure.section
            rows.append(section)
        if figure.pending:
            rows.append(
                (
                    "  " + figure.label,
                    figure.unit,
                    "-",
                    "-",
                    "-",
                    str(figure.target or ""),
                    "PENDING",
                )
            )
            continue
        cells = [
            _number(v, figure.digits) if v is not None else "-"
            for v in (
                min(figure.values) if figure.values else None,
                figure.median,
                max(figure.values) if figure.values else None,
            )
        ]
        rows.append(
            ("  " + figure.label, figure.unit, *cells, str(figure.target or ""), figure.verdict)
        )
    widths = [len(h) for h in _HEADER]
    for row in rows:
        if isinstance(row, tuple):
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [_format_row(_HEADER, widths), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    lines += [_format_row(row, widths) if isinstance(row, tuple) else row for row in rows]
    return "\n".join(lines)


def _format_row(cells: tuple[str, ...], widths: list[int]) -> str:
    label, unit, *numbers, target, verdict = cells
    parts = [label.ljust(widths[0]), unit.ljust(widths[1])]
    parts += [c.rjust(w) for c, w in zip(numbers, widths[2:5], strict=True)]
    parts += [target.rjust(widths[5]), verdict.ljust(widths[6])]
    return "  ".join(parts).rstrip()


def verdict_summary(figures: list[Figure]) -> str:
    """Targets met, then one line per missed or pending target."""
    judged = [f for f in figures if f.verdict in ("PASS", "FAIL")]
    failed = [f for f in judged if f.verdict == "FAIL"]
    pending = [f for f in figures if f.verdict == "PENDING"]
    lines = [f"targets met: {len(judged) - len(failed)} of {len(judged)} (judged on the median)"]
    lines += [
        f"  FAIL     {f.section}: {f.label} = {_number(f.median or 0, f.digits)} "
        f"{f.unit} (target {f.target})"
        for f in failed
    ]
    lines += [f"  PENDING  {f.section}: {f.label}: {f.pending}" for f in pending]
    return "\n".join(lines)
