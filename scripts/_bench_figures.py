"""From the rounds' raw results to the figures of the final table (targets of issue 5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _bench_report import Figure, Target, differences, ratios
from _bench_rounds import Plan
from _bench_wire import Json

RATIO_TARGET = Target(">=", 0.6, "x")


def _series(rounds: list[Json], *path: str) -> list[float]:
    """The value at ``path`` in every round that has it."""
    out: list[float] = []
    for one in rounds:
        value: Any = one
        for key in path:
            if not isinstance(value, dict) or key not in value:
                break
            value = value[key]
        else:
            if isinstance(value, int | float):
                out.append(float(value))
    return out


def _scaled(values: list[float], factor: float) -> list[float]:
    return [v * factor for v in values]


def build_figures(rounds: list[Json], plan: Plan) -> list[Figure]:
    figures: list[Figure] = []
    if "receive" in plan.sections:
        for qos in (0, 1):
            figures += _receive(rounds, qos)
    if "publish" in plan.sections:
        for qos in (0, 1):
            figures += _publish(rounds, qos)
    if "latency" in plan.sections:
        figures += _latency(rounds, plan)
    if "start" in plan.sections:
        figures += _start(rounds)
    if "events" in plan.sections:
        figures += _events(rounds)
    return figures


def _receive(rounds: list[Json], qos: int) -> list[Figure]:
    key = f"receive_qos{qos}"
    section = f"Receive, decode, dispatch to an actor: QoS{qos}"
    raw, gw = _series(rounds, key, "raw", "rate"), _series(rounds, key, "gw", "rate")
    raw_cpu = _series(rounds, key, "raw", "cpu_us_per_msg")
    gw_cpu = _series(rounds, key, "gw", "cpu_us_per_msg")
    load = [
        min(a, b)
        for a, b in zip(
            _series(rounds, key, "publisher_raw", "rate"),
            _series(rounds, key, "publisher_gw", "rate"),
            strict=True,
        )
    ]
    return [
        Figure(section, "raw paho receive rate", "msg/s", raw),
        Figure(section, "gwproactor receive rate", "msg/s", gw),
        Figure(section, "ratio gwproactor/raw", "x", ratios(gw, raw), RATIO_TARGET, digits=2),
        Figure(section, "raw paho CPU per message", "µs", raw_cpu, digits=1),
        Figure(section, "gwproactor CPU per message", "µs", gw_cpu, digits=1),
        Figure(section, "CPU per message gwproactor/raw", "x", ratios(gw_cpu, raw_cpu), digits=2),
        Figure(section, "load: raw-socket publisher's own rate", "msg/s", load),
    ]


def _publish(rounds: list[Json], qos: int) -> list[Figure]:
    key = f"publish_qos{qos}"
    section = f"Publish from an actor to the broker: QoS{qos} (first publish to all received)"
    raw, gw = _series(rounds, key, "raw", "rate"), _series(rounds, key, "gw", "rate")
    figures = [
        Figure(section, "raw paho publish rate", "msg/s", raw),
        Figure(section, "gwproactor publish rate", "msg/s", gw),
        Figure(section, "ratio gwproactor/raw", "x", ratios(gw, raw), RATIO_TARGET, digits=2),
        Figure(
            section,
            "raw paho publisher CPU per message",
            "µs",
            _series(rounds, key, "raw", "publisher", "cpu_us_per_msg"),
            digits=1,
        ),
        Figure(
            section,
            "gwproactor publish-loop CPU per message",
            "µs",
            _series(rounds, key, "gw", "publisher", "cpu_us_per_msg"),
            digits=1,
        ),
    ]
    if qos == 0:
        figures.append(
            Figure(
                section,
                "counting subscriber's capacity",
                "msg/s",
                _series(rounds, key, "subscriber_capacity", "rate"),
            )
        )
    return figures


def _latency(rounds: list[Json], plan: Plan) -> list[Figure]:
    section = f"Latency at {plan.latency_rate:,} msg/s, QoS0, one way (publisher to actor)"
    get: Callable[[str, str], list[float]] = lambda side, p: _series(  # noqa: E731
        rounds, "latency", side, "latency", p
    )
    raw50, gw50, raw99, gw99 = (
        get("raw", "p50_us"),
        get("gw", "p50_us"),
        *(get(s, "p99_us") for s in ("raw", "gw")),
    )
    raw_cpu = _scaled(_series(rounds, "latency", "raw", "cpu_fraction"), 100)
    gw_cpu = _scaled(_series(rounds, "latency", "gw", "cpu_fraction"), 100)
    paced = [
        min(a, b)
        for a, b in zip(
            _series(rounds, "latency", "publisher_raw", "rate"),
            _series(rounds, "latency", "publisher_gw", "rate"),
            strict=True,
        )
    ]
    cpu_section = f"CPU at {plan.latency_rate:,} msg/s (receiver process CPU / wall time)"
    return [
        Figure(section, "raw paho p50", "µs", raw50, digits=1),
        Figure(section, "gwproactor p50", "µs", gw50, digits=1),
        Figure(
            section,
            "p50 gwproactor - raw",
            "µs",
            differences(gw50, raw50),
            Target("<=", 50, " µs"),
            digits=1,
        ),
        Figure(section, "raw paho p99", "µs", raw99, digits=1),
        Figure(section, "gwproactor p99", "µs", gw99, digits=1),
        Figure(
            section,
            "p99 gwproactor/raw",
            "x",
            ratios(gw99, raw99),
            Target("<=", 2, "x"),
            digits=2,
        ),
        Figure(section, "paced publisher's achieved rate", "msg/s", paced),
        Figure(cpu_section, "raw paho", "% core", raw_cpu, digits=1),
        Figure(cpu_section, "gwproactor", "% core", gw_cpu, digits=1),
        Figure(
            cpu_section,
            "ratio gwproactor/raw",
            "x",
            ratios(gw_cpu, raw_cpu),
            Target("<=", 1.5, "x"),
            digits=2,
        ),
    ]


def _start(rounds: list[Json]) -> list[Figure]:
    section = "Start (2 links, all subscribed), RSS, idle CPU"
    s = _series
    return [
        Figure(
            section, "raw paho: launch to subscribed", "ms", s(rounds, "start", "raw", "startup_ms")
        ),
        Figure(
            section,
            "gwproactor: launch to subscribed",
            "ms",
            s(rounds, "start", "gw", "startup_ms"),
            Target("<=", 200, " ms"),
        ),
        Figure(section, "raw paho RSS", "MiB", s(rounds, "start", "raw", "rss_mib"), digits=1),
        Figure(
            section,
            "gwproactor RSS",
            "MiB",
            s(rounds, "start", "gw", "rss_mib"),
            Target("<=", 45, " MiB"),
            digits=1,
        ),
        Figure(
            section,
            "raw paho idle CPU",
            "% core",
            _scaled(s(rounds, "start", "raw", "idle_cpu_fraction"), 100),
            digits=3,
        ),
        Figure(
            section,
            "gwproactor idle CPU",
            "% core",
            _scaled(s(rounds, "start", "gw", "idle_cpu_fraction"), 100),
            Target("<=", 0.1, "%"),
            digits=3,
        ),
    ]


def _pending(rounds: list[Json], key: str) -> str:
    for one in rounds:
        reason = one.get("events", {}).get(key, {}).get("pending")
        if reason:
            return str(reason)
    return ""


def _events(rounds: list[Json]) -> list[Figure]:
    section = "Durable events (gwproactor only)"
    return [
        Figure(
            section,
            "generate_event burst, committed",
            "events/s",
            _series(rounds, "events", "burst", "rate"),
            Target(">=", 20_000),
            pending=_pending(rounds, "burst"),
        ),
        Figure(
            section,
            "re-upload of the backlog to an acking parent",
            "events/s",
            _series(rounds, "events", "reupload", "rate"),
            Target(">=", 5_000),
            pending=_pending(rounds, "reupload"),
        ),
    ]


def integrity_warnings(rounds: list[Json]) -> list[str]:
    """Runs whose figures should not be trusted: lost messages, failures, timeouts."""
    out: list[str] = []
    for n, one in enumerate(rounds, 1):
        for key in ("receive_qos0", "receive_qos1", "latency"):
            for side in ("raw", "gw"):
                run = one.get(key, {}).get(side)
                if run and not run.get("complete", True):
                    out.append(f"round {n} {key} {side}: {run['count']}/{run['expected']} received")
                if run and run.get("decode_errors"):
                    out.append(f"round {n} {key} {side}: {run['decode_errors']} decode errors")
        for key in ("publish_qos0", "publish_qos1"):
            for side in ("raw", "gw"):
                run = one.get(key, {}).get(side)
                if not run:
                    continue
                received = run["subscriber"]
                if not received.get("complete", True):
                    out.append(
                        f"round {n} {key} {side}: subscriber got "
                        f"{received['count']}/{received['expected']}"
                    )
                if run["publisher"].get("failures"):
                    out.append(
                        f"round {n} {key} {side}: {run['publisher']['failures']} publishes refused"
                    )
        events = one.get("events", {})
        if events.get("burst", {}).get("failures"):
            out.append(f"round {n} events burst: {events['burst']['failures']} events refused")
        reupload = events.get("reupload", {})
        if reupload and not reupload.get("pending") and not reupload.get("complete", True):
            out.append(f"round {n} re-upload: {reupload['left']} events still pending at timeout")
    return out
