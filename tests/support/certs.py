"""Re-export of :mod:`gwproactor.testing.certs` (it moved into the package for the demo)."""

from gwproactor.testing.certs import *  # noqa: F403
