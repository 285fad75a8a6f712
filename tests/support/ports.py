"""Re-export of :mod:`gwproactor.testing.ports` (it moved into the package for the demo)."""

from gwproactor.testing.ports import *  # noqa: F403
