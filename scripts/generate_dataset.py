#!/usr/bin/env python
"""Generate a simulated BA/AIBN data set: a thin front-end over ``polyinv.sim.cli.main``.

Example (the shipped default data set):
    python scripts/generate_dataset.py --design grid --seed 0 --out data/ba_aibn_grid432.xlsx
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from polyinv.sim.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
