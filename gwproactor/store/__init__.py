"""The durable event store: events are written here before they are published.

One sqlite file in WAL mode, written by one dedicated thread with group commit; bounded
in bytes with an explicit overflow policy; corrupt files moved aside; events queryable by
type pattern, time range and limit. See :class:`EventStore`.
"""

from gwproactor.store._model import DeadLetter, StoredEvent, StoreState, StoreStats
from gwproactor.store._pattern import TypePattern, compile_pattern, match_type
from gwproactor.store._settings import StoreSettings
from gwproactor.store._store import EventStore, ProblemCallback

__all__ = (
    "DeadLetter",
    "EventStore",
    "StoreSettings",
    "StoreState",
    "StoreStats",
    "StoredEvent",
    "ProblemCallback",
    "TypePattern",
    "compile_pattern",
    "match_type",
)
