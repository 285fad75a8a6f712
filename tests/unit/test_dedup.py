"""The de-duplication window: semantics, and an eviction cost that does not grow with it."""

from __future__ import annotations

import time

from gwproactor.links import DedupWindow


def test_window_remembers_the_last_size_ids() -> None:
    window = DedupWindow(3)
    assert [window.seen(i) for i in ("a", "b", "c")] == [False, False, False]
    assert window.seen("a") and window.seen("c")
    assert not window.seen("d")  # evicts "a", the oldest
    assert len(window) == 3
    assert not window.seen("a")  # forgotten, so new again (evicts "b")
    assert window.seen("c") and window.seen("d") and window.seen("a")
    assert not window.seen("b")


def test_seeing_an_id_again_does_not_refresh_it() -> None:
    window = DedupWindow(2)
    window.seen("a")
    window.seen("b")
    assert window.seen("a")
    window.seen("c")  # "a" is still the oldest: it leaves
    assert not window.seen("a")


def _ns_per_new_id(size: int, count: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` cost of ``seen`` for a new id on a full window of ``size``."""
    best = float("inf")
    for repeat in range(repeats):
        window = DedupWindow(size)
        prefix = f"{size}-{repeat}-"
        for i in range(size):
            window.seen(f"{prefix}{i}")
        fresh = [f"{prefix}new-{i}" for i in range(count)]
        seen = window.seen
        started = time.thread_time_ns()
        for message_id in fresh:
            seen(message_id)
        best = min(best, (time.thread_time_ns() - started) / count)
    return best


def test_eviction_cost_does_not_grow_with_the_window() -> None:
    # Relative to a small window in the same process, best of several runs, each over one
    # full turn of the large window: 128x the window may cost a little more per id (a bigger
    # set misses the CPU caches more often), never in proportion. The dict-based window it
    # replaced cost ~50x more per id at 131,072 than at 1,024.
    count = 131_072
    small = _ns_per_new_id(1_024, count)
    large = _ns_per_new_id(count, count)
    assert large <= 5 * small, f"{large:.0f} ns per id at {count:,} vs {small:.0f} ns at 1,024"
