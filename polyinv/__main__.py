"""``python -m polyinv COMMAND ...`` runs the ``polyinv`` command."""

import sys

from polyinv.cli import main

sys.exit(main())
