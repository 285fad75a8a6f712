"""The exception hierarchy of gwproactor.

Every error gwproactor raises derives from :class:`ProactorError`. Foreign errors (paho
return codes, ``OSError``, ``sqlite3.Error``, pydantic's ``ValidationError``) are translated
at the boundary where they occur, with the original chained as ``__cause__``.

Errors that are *expected data* (a malformed payload, a failed store write) are not raised
on the hot path: they are returned inside ``result.Err``. The classes below are used for both.
"""

from __future__ import annotations

__all__ = (
    "ConfigError",
    "ConnectError",
    "DecodeError",
    "EncodeError",
    "InvalidNameError",
    "LinkError",
    "ProactorError",
    "QueueFullError",
    "RoutingError",
    "StateError",
    "StoreError",
    "StoreFullError",
    "WebServerError",
)


class ProactorError(Exception):
    """Root of every error raised or returned by gwproactor."""


class ConfigError(ProactorError):
    """Settings could not be loaded or are inconsistent. The message names field and source."""


class StateError(ProactorError):
    """A method was called in a lifecycle state that does not allow it."""


class InvalidNameError(ProactorError, ValueError):
    """A gateway, actor or message type name cannot be used in a topic."""


class DecodeError(ProactorError):
    """Bytes received from a link could not be turned into a message.

    ``reason`` is a short stable token used as a stats label (``json``, ``envelope``,
    ``unknown_type``, ``payload``, ``topic``, ``mismatch``, ``too_large``).
    """

    def __init__(self, reason: str, detail: str, topic: str = "") -> None:
        super().__init__(f"{reason}: {detail}" + (f" (topic {topic!r})" if topic else ""))
        self.reason = reason
        self.detail = detail
        self.topic = topic


class EncodeError(ProactorError):
    """A message could not be encoded for a link."""


class RoutingError(ProactorError):
    """A message names a destination that no communicator or link has."""


class QueueFullError(ProactorError):
    """A bounded queue refused an item."""


class LinkError(ProactorError):
    """A link operation failed (not connected, unknown link, subscribe refused)."""


class ConnectError(LinkError):
    """Connecting to a broker failed."""


class StoreError(ProactorError):
    """The event store could not perform an operation."""


class WebServerError(ProactorError):
    """A web server could not start (address in use, permission denied, bad host)."""


class StoreFullError(StoreError):
    """The event store is at its byte bound and its policy refuses new events."""
