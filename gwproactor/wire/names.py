"""Names that travel in MQTT topics, and the topic layout ``gw/<src>/to/<dst>/<message_type>``.

Allowed names
-------------
Gateway names, actor names and message type names share one rule, so that every name is
its own topic level and the mapping from ``(src, dst, message_type)`` to a topic is the
identity on each level (reversible, nothing substituted):

* 1 to 128 characters from ``A-Z a-z 0-9 . _ -``;
* the first character is a letter or a digit, and the name does not end with ``.``;
* no two dots in a row (dotted names such as ``gw.relay.state`` form a hierarchy).

Everything MQTT gives meaning to (``/``, ``+``, ``#``, a leading ``$``), whitespace, NUL
and non-ASCII characters are therefore impossible. A name that breaks the rule raises
:class:`~gwproactor.errors.InvalidNameError`, which says which character or rule failed.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from gwproactor.errors import InvalidNameError

__all__ = (
    "MAX_NAME_LENGTH",
    "TOPIC_ROOT",
    "TopicParts",
    "is_valid_name",
    "parse_topic",
    "status_topic",
    "topic_for",
    "validate_name",
)

MAX_NAME_LENGTH = 128
TOPIC_ROOT = "gw"
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9_-])?")
_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class TopicParts(NamedTuple):
    """The three names a gateway topic carries."""

    src: str
    dst: str
    message_type: str


def is_valid_name(name: str) -> bool:
    """Whether ``name`` follows the rule in this module's docstring."""
    return _NAME_RE.fullmatch(name) is not None and ".." not in name


def validate_name(name: str, what: str = "name") -> str:
    """Return ``name`` unchanged if it is allowed; raise InvalidNameError saying why not."""
    if is_valid_name(name):
        return name
    if not name:
        reason = "it is empty"
    elif len(name) > MAX_NAME_LENGTH:
        reason = f"it has {len(name)} characters (at most {MAX_NAME_LENGTH})"
    elif bad := sorted({c for c in name if c not in _ALLOWED}):
        reason = "it contains " + ", ".join(repr(c) for c in bad)
    elif ".." in name:
        reason = "it contains '..'"
    else:
        reason = "it must start with a letter or digit and must not end with '.'"
    raise InvalidNameError(
        f"invalid {what} {name!r}: {reason}; allowed are 1-{MAX_NAME_LENGTH} characters "
        "from A-Z a-z 0-9 . _ -, starting with a letter or digit"
    )


def topic_for(src: str, dst: str, message_type: str) -> str:
    """The topic for a message from gateway ``src`` to gateway ``dst``.

    The names are not validated here (that happens once, where they enter: settings and the
    message registry); :func:`parse_topic` validates on the way in.
    """
    return f"{TOPIC_ROOT}/{src}/to/{dst}/{message_type}"


def status_topic(gateway: str) -> str:
    """Where a gateway's retained presence lives: ``gw/<gateway>/status`` (its birth
    message says ``online``, its will and clean stop say ``offline``)."""
    return f"{TOPIC_ROOT}/{gateway}/status"


def parse_topic(topic: str) -> TopicParts | None:
    """Invert :func:`topic_for`. Returns None for a topic that is not a gateway topic or
    whose names are not allowed (the caller counts that as a decode error)."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != TOPIC_ROOT or parts[2] != "to":
        return None
    src, dst, message_type = parts[1], parts[3], parts[4]
    if not (is_valid_name(src) and is_valid_name(dst) and is_valid_name(message_type)):
        return None
    return TopicParts(src, dst, message_type)
