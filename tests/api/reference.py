"""The names of gwproactor's API reference, read from ``../shared/seed-api/gwproactor-api.txt``.

The reference is a text rendering of the original package's API documentation. Its names are
enumerated here from the file itself (never from a copied list), so the conformance test
covers exactly what the reference documents and cannot drift from it.

Grammar of the rendering, as far as the names are concerned:

* ``class gwproactor.X(...)`` or ``exception gwproactor.X(...)`` opens a documented class;
* ``gwproactor.f(...)`` is a module-level function (and closes the current class);
* inside a class, a line at column 0 of the form ``[abstract|async|classmethod|property|
  class ]* name[(...)][: type| = value]`` is a member (``class Config`` is a nested class
  of ``ProactorSettings``, counted as a class; the attributes under it are counted as members
  of ``ProactorSettings``, since the rendering does not indent them);
* the line right after ``Return type:`` is a type, not a member; parameter lines are indented
  or have a space before their parenthesis, so they never match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

__all__ = ("REFERENCE_FILE", "Kind", "RefName", "reference_names")

REFERENCE_FILE = Path(__file__).resolve().parents[2].parent / "shared/seed-api/gwproactor-api.txt"

_CLASS = re.compile(r"^(?:class|exception) gwproactor\.(\w+)")
_FUNCTION = re.compile(r"^gwproactor\.(\w+)\(")
_MEMBER = re.compile(
    r"^(?P<prefix>(?:(?:abstract|async|classmethod|property|class) )*)"
    r"(?P<name>[A-Za-z_]\w*)(?:\(.*\))?(?:: .*| = .*)?$"
)


class Kind(StrEnum):
    CLASS = "class"
    FUNCTION = "function"
    MEMBER = "member"


@dataclass(frozen=True, slots=True)
class RefName:
    """One documented name: ``Proactor``, ``Proactor.start`` or ``setup_logging``."""

    kind: Kind
    name: str
    signature: str  # the documented line, for messages

    @property
    def owner(self) -> str:
        """The documented class of a member, else the name itself."""
        return self.name.partition(".")[0]


@cache
def reference_names(path: Path = REFERENCE_FILE) -> tuple[RefName, ...]:
    """Every documented name, in the reference's order. Raises FileNotFoundError naming the
    file when the reference is not where the project's layout puts it."""
    if not path.is_file():
        raise FileNotFoundError(f"the API reference is missing: {path}")
    names: list[RefName] = []
    owner: str | None = None
    previous = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.rstrip()
        if not line:
            continue
        if match := _CLASS.match(line):
            owner = match.group(1)
            names.append(RefName(Kind.CLASS, owner, line))
        elif match := _FUNCTION.match(line):
            owner = None
            names.append(RefName(Kind.FUNCTION, match.group(1), line))
        elif owner and previous != "Return type:" and (match := _MEMBER.match(line)):
            nested_class = "class" in match.group("prefix").split()
            kind = Kind.CLASS if nested_class else Kind.MEMBER
            names.append(RefName(kind, f"{owner}.{match.group('name')}", line))
        previous = line
    return tuple(names)
