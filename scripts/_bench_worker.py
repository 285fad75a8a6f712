"""Entry point of every benchmark subprocess: ``_bench_worker.py <role> <json config>``.

Roles import what they need lazily, so that a worker timing its own start pays only for
its own side (paho alone, or gwproactor). The result is printed as one ``RESULT <json>``
line; an exception is printed to stderr and the exit code is 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from _bench_wire import Json, die_with_parent, emit

SyncRole = Callable[[Json], Json]
AsyncRole = Callable[[Json], Coroutine[Any, Any, Json]]


def _sync_role(name: str) -> SyncRole | None:
    if name in ("publish-burst", "publish-paced", "subscribe-count"):
        import _bench_raw

        return {
            "publish-burst": _bench_raw.publish_burst,
            "publish-paced": _bench_raw.publish_paced,
            "subscribe-count": _bench_raw.subscribe_count,
        }[name]
    if name in ("receive-raw", "publish-raw", "start-raw"):
        import _bench_raw

        return {
            "receive-raw": _bench_raw.receive_paho,
            "publish-raw": _bench_raw.publish_paho,
            "start-raw": _bench_raw.start_paho,
        }[name]
    return None


def _async_role(name: str) -> AsyncRole | None:
    if name in ("receive-gw", "publish-gw", "start-gw"):
        import _bench_gw

        return {
            "receive-gw": _bench_gw.receive_gw,
            "publish-gw": _bench_gw.publish_gw,
            "start-gw": _bench_gw.start_gw,
        }[name]
    if name in ("events-burst", "events-awaited", "reupload-child", "reupload-parent"):
        import _bench_events

        return {
            "events-burst": _bench_events.events_burst,
            "events-awaited": _bench_events.events_awaited,
            "reupload-child": _bench_events.reupload_child,
            "reupload-parent": _bench_events.reupload_parent,
        }[name]
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} <role> <json config>", file=sys.stderr)
        return 2
    name, cfg = argv[1], json.loads(argv[2])
    if "parent_pid" in cfg:
        die_with_parent(cfg["parent_pid"])
    sync_role = _sync_role(name)
    async_role = _async_role(name)
    if sync_role is not None:
        run: SyncRole = sync_role
    elif async_role is not None:
        import asyncio  # not at the top: the raw paho start-up worker does not pay for it

        def run(cfg: Json, role: AsyncRole = async_role) -> Json:
            return asyncio.run(role(cfg))
    else:
        print(f"unknown role {name!r}", file=sys.stderr)
        return 2
    if cfg.get("profile"):
        emit("RESULT", _profiled(run, cfg, cfg["profile"]))
    elif cfg.get("trace_lone"):
        emit("RESULT", _traced(run, cfg, cfg["trace_lone"]))
    else:
        emit("RESULT", run(cfg))
    return 0


def _profiled(run: SyncRole, cfg: Json, path: str) -> Json:
    """Run the role under cProfile and dump the statistics to ``path``."""
    import cProfile

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(run, cfg)
    finally:
        profiler.dump_stats(path)


def _traced(run: SyncRole, cfg: Json, path: str) -> Json:
    """Run the role counting opcodes per lone message (``_bench_trace``), dumped to ``path``."""
    from _bench_trace import LoneTracer

    tracer = LoneTracer(cfg.get("trace_warm", 50))
    tracer.install()
    try:
        return run(cfg)
    finally:
        tracer.remove()
        tracer.dump(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
