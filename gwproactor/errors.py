"""The exception hierarchy of gwproactor.

Every error gwproactor raises, or returns inside ``result.Err``, derives from
:class:`ProactorError`, one subclass per area::

    ProactorError
    ├── ConfigError          settings, and arguments that configure a part (also a ValueError)
    ├── StateError           a call the part's lifecycle state does not allow (also a RuntimeError)
    ├── WireError            the wire format
    │   ├── DecodeError      bytes from a link that are not a valid message
    │   ├── EncodeError      a message that cannot be encoded for its link
    │   └── InvalidNameError a name that cannot be a topic level (also a ValueError)
    ├── LinkError            links: unknown link, not connected
    ├── RoutingError         a destination no communicator or link has
    │   └── QueueFullError   a bounded queue refused an item
    ├── StoreError           the event store
    │   ├── StoreFullError   full, and its policy refuses new events
    │   ├── InvalidQueryError a query the store cannot run (also a ValueError)
    │   └── UnsendableEventError an event type the upstream peer cannot decode (gwproto)
    └── WebServerError       a web server that cannot start

Foreign errors (``OSError``, ``sqlite3.Error``, pydantic's ``ValidationError``, ``ssl``
errors) are translated where they cross into gwproactor, with the original chained as
``__cause__`` (``raise StoreError(...) from exc``). A broker connection that fails is not
raised at all: the link reports it (``link.connect_failed`` events, stats, ``last_error``)
and keeps retrying, since failing to connect is the expected weather of a field gateway.

The classes that also derive from ``ValueError`` or ``RuntimeError`` do so for callers that
caught those before the class existed; catch the gwproactor class in new code. A call whose
arguments no caller could mean (an unknown keyword, an empty sd_notify message) raises
Python's own ``TypeError`` or ``ValueError``, as Python would; ``gwproactor.testing`` (test
tooling: brokers, certificates) has its own ``RuntimeError`` subclasses.

Errors that are *expected data* (a malformed payload, a failed store write) are not raised
on the hot path: they are returned inside ``result.Err``.
"""

from __future__ import annotations

__all__ = (
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "InvalidNameError",
    "InvalidQueryError",
    "LinkError",
    "ProactorError",
    "QueueFullError",
    "RoutingError",
    "StateError",
    "StoreError",
    "StoreFullError",
    "UnsendableEventError",
    "WebServerError",
    "WireError",
)


class ProactorError(Exception):
    """Root of every error raised or returned by gwproactor."""


# -- configuration and lifecycle ---------------------------------------------------------------


class ConfigError(ProactorError, ValueError):
    """Settings could not be loaded or are inconsistent, or an argument that configures a
    part is invalid (a name taken twice, a bound that is not positive). The message names
    the field and, for settings, their source."""


class StateError(ProactorError, RuntimeError):
    """A method was called in a lifecycle state that does not allow it (start twice, use
    before start, send after stop). The part's state is unchanged."""


# -- the wire format ----------------------------------------------------------------------------


class WireError(ProactorError):
    """The wire format: a message or a name that cannot travel, or bytes that are not one."""


class DecodeError(WireError):
    """Bytes received from a link could not be turned into a message.

    ``reason`` is a short stable token used as a stats label (``json``, ``envelope``,
    ``unknown_type``, ``payload``, ``topic``, ``mismatch``, ``too_large``).
    """

    def __init__(self, reason: str, detail: str, topic: str = "") -> None:
        super().__init__(f"{reason}: {detail}" + (f" (topic {topic!r})" if topic else ""))
        self.reason = reason
        self.detail = detail
        self.topic = topic


class EncodeError(WireError):
    """A message could not be encoded for a link."""


class InvalidNameError(WireError, ValueError):
    """A gateway, actor or message type name cannot be used in a topic."""


# -- links and routing --------------------------------------------------------------------------


class LinkError(ProactorError):
    """A link operation failed (unknown link, not connected)."""


class RoutingError(ProactorError):
    """A message names a destination that no communicator or link has."""


class QueueFullError(RoutingError):
    """A bounded queue refused an item."""


# -- the event store ---------------------------------------------------------------------------


class StoreError(ProactorError):
    """The event store could not perform an operation (its directory, sqlite, its writer
    thread); the cause is chained where there is one."""


class StoreFullError(StoreError):
    """The event store is at its byte bound and its policy refuses new events."""


class InvalidQueryError(StoreError, ValueError):
    """An event query the store cannot run: a malformed type pattern, a limit out of range."""


class UnsendableEventError(StoreError):
    """The upstream peer cannot decode (nor so acknowledge) events of this type (a gwproto
    peer and a type outside ``gridworks.event.*``): refused before it is stored."""


# -- the web ----------------------------------------------------------------------------------


class WebServerError(ProactorError):
    """A web server could not start (address in use, permission denied, bad host)."""
