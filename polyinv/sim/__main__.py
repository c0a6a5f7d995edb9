"""``python -m polyinv.sim --design grid --out data.xlsx``."""

import sys

from polyinv.sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
