#!/usr/bin/env python
"""Benchmark the forward simulator: recipes per second for the 432-recipe grid and a Latin hypercube.

    python -m benchmarks.simulator_speed [--lhs-n 10000] [--repeats 3] [--jobs 1]

Reports the median wall time of ``--repeats`` runs of ``simulate_many`` (no file writing).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from polyinv.sim import grid_design, lhs_design, simulate_many


def bench(name: str, recipes, repeats: int, jobs: int) -> None:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        simulate_many(recipes, n_jobs=jobs, progress=False)
        times.append(time.perf_counter() - start)
    med = statistics.median(times)
    print(
        f"{name:>10}: {len(recipes):6d} recipes  median {med:7.2f} s  ({len(recipes) / med:8.0f} recipes/s; "
        f"runs: {', '.join(f'{t:.2f}' for t in times)})"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lhs-n", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--jobs", type=int, default=1)
    args = p.parse_args(argv)
    bench("grid", grid_design(), args.repeats, args.jobs)
    bench("lhs", lhs_design(args.lhs_n, seed=0), args.repeats, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
