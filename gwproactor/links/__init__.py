"""Links: a broker connection to one peer with an explicit health state machine."""

from gwproactor.links._acks import AckTracker
from gwproactor.links._dedup import DedupWindow
from gwproactor.links._link import Link, LinkOwner, TransportFactory
from gwproactor.links._state import TRANSITIONS, LinkInput, LinkState, transition

__all__ = (
    "TRANSITIONS",
    "AckTracker",
    "DedupWindow",
    "Link",
    "LinkInput",
    "LinkOwner",
    "LinkState",
    "TransportFactory",
    "transition",
)
