"""The message types a gateway knows before its actors add theirs."""

from __future__ import annotations

from gwproactor.observe.problems import ProblemEvent
from gwproactor.wire.codec import MessageRegistry


def default_registry() -> MessageRegistry:
    """gw.ack, gw.acks, gw.ping (every registry has them) and gw.problem; actors add
    their own through ``payload_types``."""
    return MessageRegistry(ProblemEvent)
