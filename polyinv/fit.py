"""``python -m polyinv.fit ...`` is ``polyinv fit ...``."""

import sys

from polyinv.cli.fit import main

if __name__ == "__main__":
    sys.exit(main())
