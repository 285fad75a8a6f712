"""A bounded window of recently seen message ids (at-least-once in, at-most-once out)."""

from __future__ import annotations

from collections import deque

__all__ = ("DedupWindow",)


class DedupWindow:
    """Remembers the last ``size`` message ids. ``seen(id)`` says whether an id was already
    in the window and adds it if not. Oldest ids leave first.

    A set answers membership and a FIFO of the same ids says which one is oldest, so an
    eviction is O(1) whatever the size. (A dict alone, evicting with
    ``next(iter(dict))``, skips every already-deleted slot at its front: its cost grows
    with the window, ~30 µs per message at 65,536.)
    """

    __slots__ = ("_ids", "_order", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def __len__(self) -> int:
        return len(self._ids)

    def seen(self, message_id: str) -> bool:
        ids = self._ids
        if message_id in ids:
            return True
        ids.add(message_id)
        order = self._order
        order.append(message_id)
        if len(order) > self.size:
            ids.discard(order.popleft())
        return False
