"""Python bytecode of a receiver per lone message, split at the actor: what runs between
the wake-up (the loop's ``epoll.poll`` or paho's ``select`` returning) and the actor's
``Tally.hit`` is the message's latency; the rest (acks flushed after it, the loop going
back to sleep) is CPU only. Used by ``profile_latency.py`` through the worker's
``trace_lone`` option; standard library only, like every benchmark worker module.

Counts, not times: the machine's load does not change them. The main thread only (the
event loop's, or paho's ``loop_forever``).
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path
from types import FrameType
from typing import Any

_HIT_FILE = "_bench_wire.py"  # Tally.hit: the actor got the message
WAKE_FUNCTIONS = frozenset({"poll", "select"})  # epoll.poll (asyncio), select.select (paho)


class LoneTracer:
    """Counts opcodes by (file, function), in two buckets: ``critical`` (from the last
    wake-up to the actor) and ``after`` (from the actor to the next wake-up). Starts
    counting at the ``warm``-th message."""

    def __init__(self, warm: int) -> None:
        self.warm = warm
        self.hits = 0
        self.counted = 0
        self.in_critical = False
        self.critical: collections.Counter[tuple[str, str]] = collections.Counter()
        self.after: collections.Counter[tuple[str, str]] = collections.Counter()
        self.wakeups = 0

    def install(self) -> None:
        sys.setprofile(self._profile)
        sys.settrace(self._trace)

    def remove(self) -> None:
        sys.settrace(None)
        sys.setprofile(None)

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_return" and getattr(arg, "__name__", "") in WAKE_FUNCTIONS:
            self.in_critical = True
            if self.hits > self.warm:
                self.wakeups += 1

    def _trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        code = frame.f_code
        if event == "call" and code.co_name == "hit" and code.co_filename.endswith(_HIT_FILE):
            self.hits += 1
            if self.hits > self.warm:
                self.counted += 1
            self.in_critical = False
        elif event == "opcode" and self.hits > self.warm:
            bucket = self.critical if self.in_critical else self.after
            bucket[(Path(code.co_filename).name, code.co_name)] += 1
        return self._trace

    def result(self) -> dict[str, Any]:
        """Totals per message and the functions of each bucket, per message."""
        per = max(self.counted, 1)

        def rows(counts: collections.Counter[tuple[str, str]]) -> list[tuple[str, float]]:
            return [(f"{f}:{n}", c / per) for (f, n), c in counts.most_common()]

        return {
            "messages": self.counted,
            "wakeups_per_message": self.wakeups / per,
            "critical_per_message": sum(self.critical.values()) / per,
            "after_per_message": sum(self.after.values()) / per,
            "critical": rows(self.critical),
            "after": rows(self.after),
        }

    def dump(self, path: str) -> None:
        Path(path).write_text(json.dumps(self.result()))
