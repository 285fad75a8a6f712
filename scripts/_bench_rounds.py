"""One round of the benchmark: every workload, raw paho and gwproactor side by side.

Each receiver, publisher and start-up probe runs in its own fresh subprocess; within a
round the order of the two sides alternates (raw first in even rounds, gwproactor first in
odd ones) so that neither always runs on a warmer or cooler machine.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Literal

from _bench_procs import Worker, Workers
from _bench_wire import RAW_TOPIC, TOPIC_DOWN, TOPIC_UP, Json

Side = Literal["raw", "gw"]
SECTIONS = ("receive", "dedup", "raw", "publish", "latency", "start", "events")
DEDUP_WINDOWS = (4_096, 65_536)
RAW_FILTERS = (1, 10, 1_000)


@dataclass(frozen=True)
class Plan:
    """How much work each workload does (``--quick`` divides the counts)."""

    rounds: int = 5
    receive_qos0: int = 30_000
    receive_qos1: int = 15_000
    publish_qos0: int = 30_000
    publish_qos1: int = 15_000
    dedup_messages: int = 30_000
    raw_messages: int = 20_000
    latency_messages: int = 2_000
    latency_rate: int = 1_000
    idle_seconds: float = 5.0
    events_burst: int = 20_000
    events_awaited: int = 1_000
    reupload_events: int = 10_000
    sections: tuple[str, ...] = SECTIONS
    timeout: float = 180.0

    @classmethod
    def quick(cls, rounds: int = 2, sections: tuple[str, ...] = SECTIONS) -> Plan:
        return cls(
            rounds=rounds,
            receive_qos0=5_000,
            receive_qos1=2_500,
            publish_qos0=5_000,
            publish_qos1=2_500,
            dedup_messages=5_000,
            raw_messages=4_000,
            latency_messages=600,
            idle_seconds=2.0,
            events_burst=5_000,
            events_awaited=300,
            reupload_events=2_000,
            sections=sections,
            timeout=60.0,
        )

    def as_json(self) -> Json:
        return asdict(self)


class Round:
    """Runs the workloads of one round against the broker on ``port``."""

    def __init__(self, index: int, plan: Plan, workers: Workers, port: int) -> None:
        self.index = index
        self.plan = plan
        self.workers = workers
        self.port = port
        self.sides: tuple[Side, Side] = ("raw", "gw") if index % 2 == 0 else ("gw", "raw")

    def run(self, progress: bool = True) -> Json:
        out: Json = {"order": list(self.sides), "section_seconds": {}}
        plan = self.plan
        for section in SECTIONS:
            if section not in plan.sections:
                continue
            started = time.monotonic()
            if section == "receive":
                out["receive_qos0"] = self.receive(0, plan.receive_qos0)
                self._say(progress, "receive QoS0", out["receive_qos0"], "rate", "msg/s")
                out["receive_qos1"] = self.receive(1, plan.receive_qos1)
                self._say(progress, "receive QoS1", out["receive_qos1"], "rate", "msg/s")
            elif section == "dedup":
                out["dedup"] = self.dedup()
                self._say(progress, "dedup 64k/4k", out["dedup"], "rate", "msg/s", "4096", "65536")
            elif section == "raw":
                out["raw"] = self.raw()
                self._say(progress, "raw 10 filters", out["raw"], "rate", "msg/s", "raw", "gw10")
                self._say(
                    progress, "raw CPU 1k/1", out["raw"], "cpu_us_per_msg", "µs", "gw1", "gw1000"
                )
            elif section == "publish":
                out["publish_qos0"] = self.publish(0, plan.publish_qos0)
                self._say(progress, "publish QoS0", out["publish_qos0"], "rate", "msg/s")
                out["publish_qos1"] = self.publish(1, plan.publish_qos1)
                self._say(progress, "publish QoS1", out["publish_qos1"], "rate", "msg/s")
            elif section == "latency":
                out["latency"] = self.latency(0)
                self._say(progress, "latency0 p50", out["latency"], ("latency", "p50_us"), "µs")
                out["latency_qos1"] = self.latency(1)
                self._say(
                    progress, "latency1 p50", out["latency_qos1"], ("latency", "p50_us"), "µs"
                )
            elif section == "start":
                out["start"] = self.start()
                self._say(progress, "start", out["start"], "startup_ms", "ms")
            else:
                out["events"] = self.events()
                if progress:
                    print(f"    events: {_brief(out['events'])}", flush=True)
            out["section_seconds"][section] = time.monotonic() - started
        return out

    # -- workloads ----------------------------------------------------------------------------

    def receive(self, qos: int, count: int) -> Json:
        """Both receivers, each fed the same burst by a fresh raw-socket publisher."""
        out: Json = {}
        for side in self.sides:
            out[side], out[f"publisher_{side}"] = self._fed(f"receive-{side}", {}, qos, count)
        return out

    def _fed(
        self, role: str, extra: Json, qos: int, count: int, topic: str = TOPIC_UP
    ) -> tuple[Json, Json]:
        """One receiver fed a burst on ``topic``: (its result, the publisher's)."""
        receiver = self.workers.spawn(
            role,
            {"port": self.port, "qos": qos, "count": count, "mode": "throughput", **extra},
        )
        receiver.expect("READY", self.plan.timeout)
        publisher = self.workers.spawn(
            "publish-burst", {"port": self.port, "qos": qos, "count": count, "topic": topic}
        )
        sent = publisher.result(self.plan.timeout)
        return receiver.result(self.plan.timeout), sent

    def dedup(self) -> Json:
        """gwproactor receiving at QoS0 with a full de-duplication window of 4,096 ids and
        of 65,536 (every message evicts one), in alternating order."""
        out: Json = {}
        windows = DEDUP_WINDOWS if self.index % 2 == 0 else DEDUP_WINDOWS[::-1]
        for window in windows:
            out[str(window)], _ = self._fed(
                "receive-gw", {"dedup_window": window}, 0, self.plan.dedup_messages
            )
        return out

    def raw(self) -> Json:
        """Raw topics at QoS0: raw paho subscribed to the topic, and gwproactor with 1, 10
        and 1,000 raw filters on the link (one matching), in alternating order."""
        count = self.plan.raw_messages
        runs: list[tuple[str, str, Json]] = [("raw", "receive-raw", {"topic": RAW_TOPIC})]
        runs += [(f"gw{n}", "receive-gw", {"raw_filters": n}) for n in RAW_FILTERS]
        if self.index % 2:
            runs.reverse()
        out: Json = {}
        for key, role, extra in runs:
            out[key], _ = self._fed(role, extra, 0, count, RAW_TOPIC)
        return out

    def publish(self, qos: int, count: int) -> Json:
        """Each side publishes ``count`` envelopes; a raw-socket subscriber counts them.
        The rate is end to end: first publish to the subscriber having them all."""
        out: Json = {}
        for side in self.sides:
            subscriber = self._subscriber(qos, count)
            publisher = self.workers.spawn(
                f"publish-{side}",
                {"port": self.port, "qos": qos, "count": count, "timeout": self.plan.timeout},
            )
            received = subscriber.result(self.plan.timeout)
            publisher.command("stop")
            sent = publisher.result(self.plan.timeout)
            span_ns = max(received["last_ns"] - sent["first_ns"], 1)
            out[side] = {
                "publisher": sent,
                "subscriber": received,
                "rate": received["count"] / span_ns * 1e9,
                "complete": received["complete"],
            }
        if qos == 0:
            # Calibration: the counting subscriber fed by the raw-socket publisher, to show
            # that it is not what limits the two publishers above.
            subscriber = self._subscriber(qos, count)
            feeder = self.workers.spawn(
                "publish-burst",
                {"port": self.port, "qos": qos, "count": count, "topic": TOPIC_DOWN},
            )
            feeder.result(self.plan.timeout)
            out["subscriber_capacity"] = subscriber.result(self.plan.timeout)
        return out

    def _subscriber(self, qos: int, count: int) -> Worker:
        subscriber = self.workers.spawn(
            "subscribe-count", {"port": self.port, "qos": qos, "count": count}
        )
        subscriber.expect("READY", self.plan.timeout)
        return subscriber

    def latency(self, qos: int) -> Json:
        """Both receivers at ``latency_rate`` msg/s, one-way latency and CPU."""
        out: Json = {}
        plan = self.plan
        for side in self.sides:
            receiver = self.workers.spawn(
                f"receive-{side}",
                {
                    "port": self.port,
                    "qos": qos,
                    "count": plan.latency_messages,
                    "mode": "latency",
                },
            )
            out[f"tcp_nodelay_{side}"] = receiver.expect("READY", plan.timeout)["tcp_nodelay"]
            publisher = self.workers.spawn(
                "publish-paced",
                {
                    "port": self.port,
                    "qos": qos,
                    "count": plan.latency_messages,
                    "rate": plan.latency_rate,
                },
            )
            out[f"publisher_{side}"] = publisher.result(plan.timeout)
            out[side] = receiver.result(plan.timeout)
        return out

    def start(self) -> Json:
        """Start-up probes. The second is launched once the first is subscribed, so that
        their idle periods overlap (a shorter round) while their starts do not."""
        out: Json = {}
        running = []
        for side in self.sides:
            probe = self.workers.spawn(
                f"start-{side}", {"port": self.port, "idle_seconds": self.plan.idle_seconds}
            )
            probe.expect("READY", self.plan.timeout)
            running.append((side, probe))
        for side, probe in running:
            out[side] = probe.result(self.plan.timeout + self.plan.idle_seconds)
        return out

    def events(self) -> Json:
        """gwproactor only: a burst of generate_event, and a re-upload of a backlog."""
        plan = self.plan
        out: Json = {}
        burst = self.workers.spawn("events-burst", {"count": plan.events_burst})
        out["burst"] = burst.result(plan.timeout)
        awaited = self.workers.spawn("events-awaited", {"count": plan.events_awaited})
        out["awaited"] = awaited.result(plan.timeout)
        child = self.workers.spawn(
            "reupload-child", {"port": self.port, "count": plan.reupload_events}
        )
        ready = child.expect("READY", plan.timeout)
        if ready.get("pending"):
            out["reupload"] = child.result(plan.timeout)
            return out
        parent = self.workers.spawn("reupload-parent", {"port": self.port})
        out["reupload"] = child.result(plan.timeout)
        parent.command("stop")
        out["reupload_parent"] = parent.result(plan.timeout)
        return out

    def _say(
        self,
        progress: bool,
        what: str,
        data: Json,
        key: str | tuple[str, str],
        unit: str,
        left: str = "raw",
        right: str = "gw",
    ) -> None:
        if not progress:
            return

        def get(side: str) -> float:
            value = data[side]
            for part in (key,) if isinstance(key, str) else key:
                value = value[part]
            return float(value)

        raw, gw = get(left), get(right)
        ratio = f"{gw / raw:.2f}" if raw else "-"
        print(
            f"    {what:<14} {left} {raw:>10,.1f} {unit:<5} {right} {gw:>10,.1f} {unit:<5} "
            f"{right}/{left} {ratio}",
            flush=True,
        )


def _brief(data: Json) -> str:
    parts = []
    awaited = data.get("awaited", {})
    if "cpu_us_per_event" in awaited:
        beyond = awaited["cpu_us_per_event"] - awaited.get("bare_cpu_us_per_commit", 0.0)
        parts.append(
            f"awaited {awaited['rate']:,.0f} events/s at {awaited['cpu_us_per_event']:.0f} µs "
            f"CPU ({awaited['loop_cpu_us_per_event']:.0f} on the loop, {beyond:.0f} beyond "
            f"the bare commit; fsync {awaited['fsync_us']:.0f} µs)"
        )
    for key in ("burst", "reupload"):
        value = data.get(key, {})
        if value.get("pending"):
            parts.append(f"{key} pending ({value['pending']})")
        elif "rate" in value:
            parts.append(f"{key} {value['rate']:,.0f} events/s")
    return ", ".join(parts)
