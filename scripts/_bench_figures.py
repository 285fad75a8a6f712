"""From the rounds' raw results to the figures of the final table (targets of issues 5
and 15: every target is a ratio to its reference measured in the same round, except the
idle CPU, the per-id dedup cost and the event rates; the CPU per awaited event is judged
beyond the bare sqlite commit measured in the same worker, interleaved with it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _bench_report import Figure, Target, differences, ratios
from _bench_rounds import DEDUP_WINDOWS, RAW_FILTERS, Plan
from _bench_wire import Json

RECEIVE_TARGETS = {0: Target(">=", 1.5, "x"), 1: Target(">=", 1.3, "x")}
PUBLISH_CPU_TARGETS = {0: Target("<=", 0.8, "x"), 1: Target("<=", 1.0, "x")}


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
    if "dedup" in plan.sections:
        figures += _dedup(rounds)
    if "raw" in plan.sections:
        figures += _raw(rounds)
    if "publish" in plan.sections:
        for qos in (0, 1):
            figures += _publish(rounds, qos)
    if "latency" in plan.sections:
        figures += _latency(rounds, plan, 0)
        figures += _latency(rounds, plan, 1)
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
        Figure(
            section, "ratio gwproactor/raw", "x", ratios(gw, raw), RECEIVE_TARGETS[qos], digits=2
        ),
        Figure(section, "raw paho CPU per message", "µs", raw_cpu, digits=1),
        Figure(section, "gwproactor CPU per message", "µs", gw_cpu, digits=1),
        Figure(section, "CPU per message gwproactor/raw", "x", ratios(gw_cpu, raw_cpu), digits=2),
        Figure(section, "load: raw-socket publisher's own rate", "msg/s", load),
    ]


def _dedup(rounds: list[Json]) -> list[Figure]:
    section = "De-duplication window: gwproactor receiving at QoS0, window full"
    small, large = (str(w) for w in DEDUP_WINDOWS)
    rate_small, rate_large = (_series(rounds, "dedup", w, "rate") for w in (small, large))
    cpu_small, cpu_large = (_series(rounds, "dedup", w, "cpu_us_per_msg") for w in (small, large))
    return [
        Figure(section, f"receive rate, window {int(small):,}", "msg/s", rate_small),
        Figure(section, f"receive rate, window {int(large):,}", "msg/s", rate_large),
        Figure(
            section,
            f"ratio {int(large):,}/{int(small):,}",
            "x",
            ratios(rate_large, rate_small),
            Target(">=", 0.95, "x"),
            digits=2,
        ),
        Figure(section, f"CPU per message, window {int(small):,}", "µs", cpu_small, digits=1),
        Figure(section, f"CPU per message, window {int(large):,}", "µs", cpu_large, digits=1),
        Figure(
            section,
            f"cost of one new id, window {int(small):,}",
            "µs",
            _scaled(_series(rounds, "dedup", small, "dedup_ns_per_id"), 1e-3),
            digits=3,
        ),
        Figure(
            section,
            f"cost of one new id, window {int(large):,}",
            "µs",
            _scaled(_series(rounds, "dedup", large, "dedup_ns_per_id"), 1e-3),
            Target("<=", 0.3, " µs"),
            digits=3,
        ),
    ]


def _raw(rounds: list[Json]) -> list[Figure]:
    section = "Raw topics (subscribe_raw) at QoS0: N filters on the link, one matching"
    paho = _series(rounds, "raw", "raw", "rate")
    rate = {n: _series(rounds, "raw", f"gw{n}", "rate") for n in RAW_FILTERS}
    cpu = {n: _series(rounds, "raw", f"gw{n}", "cpu_us_per_msg") for n in RAW_FILTERS}
    first, mid, last = RAW_FILTERS
    figures = [Figure(section, "raw paho receive rate (its topic)", "msg/s", paho)]
    figures += [Figure(section, f"gwproactor rate, {n:,} filters", "msg/s", rate[n]) for n in rate]
    figures.append(
        Figure(
            section,
            f"ratio gwproactor ({mid} filters)/raw",
            "x",
            ratios(rate[mid], paho),
            Target(">=", 1.0, "x"),
            digits=2,
        )
    )
    figures.append(
        Figure(
            section,
            "raw paho CPU per message",
            "µs",
            _series(rounds, "raw", "raw", "cpu_us_per_msg"),
            digits=1,
        )
    )
    figures += [
        Figure(section, f"gwproactor CPU per message, {n:,} filters", "µs", cpu[n], digits=1)
        for n in cpu
    ]
    figures.append(
        Figure(
            section,
            f"CPU per message {last:,} filters/{first}",
            "x",
            ratios(cpu[last], cpu[first]),
            Target("<=", 1.2, "x"),
            digits=2,
        )
    )
    return figures


def _publish(rounds: list[Json], qos: int) -> list[Figure]:
    key = f"publish_qos{qos}"
    section = f"Publish from an actor to the broker: QoS{qos} (first publish to all received)"
    raw, gw = _series(rounds, key, "raw", "rate"), _series(rounds, key, "gw", "rate")
    raw_cpu = _series(rounds, key, "raw", "publisher", "cpu_us_per_msg")
    gw_cpu = _series(rounds, key, "gw", "publisher", "cpu_us_per_msg")
    figures = [
        Figure(section, "raw paho publish rate", "msg/s", raw),
        Figure(section, "gwproactor publish rate", "msg/s", gw),
        Figure(
            section, "ratio gwproactor/raw", "x", ratios(gw, raw), Target(">=", 1.0, "x"), digits=2
        ),
        Figure(section, "raw paho publisher CPU per message", "µs", raw_cpu, digits=1),
        Figure(section, "gwproactor publisher CPU per message", "µs", gw_cpu, digits=1),
        Figure(
            section,
            "publisher CPU per message gwproactor/raw",
            "x",
            ratios(gw_cpu, raw_cpu),
            PUBLISH_CPU_TARGETS[qos],
            digits=2,
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


def _latency(rounds: list[Json], plan: Plan, qos: int) -> list[Figure]:
    key = "latency" if qos == 0 else "latency_qos1"
    section = f"Latency at {plan.latency_rate:,} msg/s, QoS{qos}, one way (publisher to actor)"
    get: Callable[[str, str], list[float]] = lambda side, p: _series(  # noqa: E731
        rounds, key, side, "latency", p
    )
    raw50, gw50, raw99, gw99 = (
        get("raw", "p50_us"),
        get("gw", "p50_us"),
        *(get(s, "p99_us") for s in ("raw", "gw")),
    )
    raw_cpu = _scaled(_series(rounds, key, "raw", "cpu_fraction"), 100)
    gw_cpu = _scaled(_series(rounds, key, "gw", "cpu_fraction"), 100)
    paced = [
        min(a, b)
        for a, b in zip(
            _series(rounds, key, "publisher_raw", "rate"),
            _series(rounds, key, "publisher_gw", "rate"),
            strict=True,
        )
    ]
    cpu_section = f"CPU at {plan.latency_rate:,} msg/s, QoS{qos} (receiver process CPU / wall time)"
    return [
        Figure(section, "raw paho p50", "µs", raw50, digits=1),
        Figure(section, "gwproactor p50", "µs", gw50, digits=1),
        Figure(
            section,
            "p50 gwproactor - raw",
            "µs",
            differences(gw50, raw50),
            Target("<=", 10, " µs"),
            digits=1,
        ),
        Figure(section, "raw paho p99", "µs", raw99, digits=1),
        Figure(section, "gwproactor p99", "µs", gw99, digits=1),
        Figure(
            section,
            "p99 gwproactor/raw",
            "x",
            ratios(gw99, raw99),
            Target("<=", 1.5, "x"),
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
    raw_ms, gw_ms = (s(rounds, "start", side, "startup_ms") for side in ("raw", "gw"))
    raw_rss, gw_rss = (s(rounds, "start", side, "rss_mib") for side in ("raw", "gw"))
    return [
        Figure(section, "raw paho: launch to subscribed", "ms", raw_ms),
        Figure(section, "gwproactor: launch to subscribed", "ms", gw_ms),
        Figure(
            section,
            "launch to subscribed gwproactor/raw",
            "x",
            ratios(gw_ms, raw_ms),
            Target("<=", 2, "x"),
            digits=2,
        ),
        Figure(section, "raw paho RSS", "MiB", raw_rss, digits=1),
        Figure(section, "gwproactor RSS", "MiB", gw_rss, digits=1),
        Figure(
            section,
            "RSS gwproactor/raw",
            "x",
            ratios(gw_rss, raw_rss),
            Target("<=", 1.6, "x"),
            digits=2,
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
    pending = _pending(rounds, "awaited")
    cpu = _series(rounds, "events", "awaited", "cpu_us_per_event")
    wall = _series(rounds, "events", "awaited", "wall_us_per_event")
    bare_cpu = _series(rounds, "events", "awaited", "bare_cpu_us_per_commit")
    bare_wall = _series(rounds, "events", "awaited", "bare_wall_us_per_commit")
    floor_cpu = _series(rounds, "events", "awaited", "floor_cpu_us_per_event")
    floor_beyond = differences(floor_cpu, bare_cpu) if len(floor_cpu) == len(bare_cpu) else []
    floor_wall = _series(rounds, "events", "awaited", "floor_wall_us_per_event")
    floor_ratio = ratios(floor_wall, bare_wall) if len(floor_wall) == len(bare_wall) else []
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
            "generate_event awaited one at a time",
            "events/s",
            _series(rounds, "events", "awaited", "rate"),
            pending=_pending(rounds, "awaited"),
        ),
        Figure(
            section,
            "  CPU per awaited event, total",
            "µs",
            cpu,
            pending=pending,
            digits=1,
        ),
        Figure(
            section,
            "    of which the event loop's thread",
            "µs",
            _series(rounds, "events", "awaited", "loop_cpu_us_per_event"),
            pending=pending,
            digits=1,
        ),
        Figure(
            section,
            "  CPU per awaited event beyond the bare commit",
            "µs",
            differences(cpu, bare_cpu),
            Target("<=", 50, " µs"),
            pending=pending,
            digits=1,
        ),
        Figure(
            section,
            "  wall time per awaited event",
            "µs",
            wall,
            pending=pending,
            digits=1,
        ),
        Figure(
            section,
            "  wall per awaited event / bare commit's wall",
            "x",
            ratios(wall, bare_wall),
            pending=pending,
            digits=2,
        ),
        Figure(
            section,
            "  bare sqlite commit of one row (same store), CPU",
            "µs",
            bare_cpu,
            pending=pending,
            digits=1,
        ),
        Figure(
            section,
            "  bare sqlite commit of one row, wall",
            "µs",
            bare_wall,
            pending=pending,
            digits=1,
        ),
        Figure(
            section,
            "  hand-off floor (plain thread, bare commit) CPU beyond bare",
            "µs",
            floor_beyond,
            pending=pending,
            digits=1,
        ),
        Figure(
            section,
            "  hand-off floor wall / bare commit's wall",
            "x",
            floor_ratio,
            pending=pending,
            digits=2,
        ),
        Figure(
            section,
            "  the disk's fsync (4 KiB append + fdatasync)",
            "µs",
            _series(rounds, "events", "awaited", "fsync_us"),
            pending=pending,
            digits=1,
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
        for key in ("receive_qos0", "receive_qos1", "latency", "latency_qos1", "raw", "dedup"):
            for side in ("raw", "gw", "gw1", "gw10", "gw1000", *map(str, DEDUP_WINDOWS)):
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
