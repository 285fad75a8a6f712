"""Re-export of :mod:`gwproactor.testing.mosquitto` (it moved into the package for the demo)."""

from gwproactor.testing.mosquitto import *  # noqa: F403
