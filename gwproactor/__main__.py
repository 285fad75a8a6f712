"""``python -m gwproactor`` is the ``gwproactor`` command."""

import sys

from gwproactor.cli import main

sys.exit(main())
