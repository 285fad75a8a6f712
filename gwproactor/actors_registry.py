"""The message types a gateway knows before its actors add theirs."""

from __future__ import annotations

from gwproactor.codec import MessageRegistry
from gwproactor.problems import ProblemEvent


def default_registry() -> MessageRegistry:
    """gw.ack, gw.ping and gw.problem; actors add their own through ``payload_types``."""
    return MessageRegistry(ProblemEvent)
