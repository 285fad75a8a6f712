"""A bounded window of recently seen message ids (at-least-once in, at-most-once out)."""

from __future__ import annotations

__all__ = ("DedupWindow",)


class DedupWindow:
    """Remembers the last ``size`` message ids. ``seen(id)`` says whether an id was already
    in the window and adds it if not. Oldest ids leave first (dicts keep insertion order)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: dict[str, None] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def seen(self, message_id: str) -> bool:
        ids = self._ids
        if message_id in ids:
            return True
        ids[message_id] = None
        if len(ids) > self.size:
            del ids[next(iter(ids))]
        return False
