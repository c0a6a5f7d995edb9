"""Rounding robustness of the shipped network configs: the same config and seed fitted with 1, 2 and 4 torch
threads (float summation order changes with the thread count) and with the kernels of another processor
(``--isa avx2``: MKL, oneDNN and ATen restricted to AVX2 on an AVX-512 machine), each in its own process, in
float32 and in float64 (``trainer.precision 64-true``). Global and per-target test R² go to
``results/threads/<name>.json``.

  python -m benchmarks.threads [--configs mlp.yaml cnn.yaml] [--threads 1 2 4] [--precisions 32-true 64-true]
                               [--isa native avx2] [--seeds 42]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


#: Environment that makes an AVX-512 machine compute with AVX2 kernels (another processor's summation order).
ISA_ENV = {
    "native": {},
    "avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}


def one_fit(config: str, threads: int, precision: str, seed: int, isa: str = "native") -> dict:
    """Fit in a fresh process with ``threads`` intra-op threads; the run's metrics.json plus its wall time."""
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), **ISA_ENV[isa]}
        code = (
            "import sys, torch; torch.set_num_threads(int(sys.argv[1])); from polyinv.cli import fit; "
            "sys.exit(fit.main(sys.argv[2:]))"
        )
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                str(threads),
                "--config",
                config,
                "--seed",
                str(seed),
                "--output.root",
                root,
                "--trainer.enable_progress_bar",
                "false",
                "--trainer.accelerator",
                "cpu",
                "--trainer.precision",
                precision,
                "--trust.forward",
                "none",
                "--trust.refine",
                "none",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
        if proc.returncode:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1])
        metrics = json.loads(next(Path(root).glob("*/version_0/metrics.json")).read_text())
    return {
        "config": config,
        "threads": threads,
        "precision": precision,
        "seed": seed,
        "isa": isa,
        "seconds": round(seconds, 1),
        "global_r2": metrics["global"]["r2"],
        "r2": {k: v["r2"] for k, v in metrics["targets"].items()},
    }


def summary(out: Path) -> Path:
    """``threads.md``: one line per record, grouped by config, precision and seed."""
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    lines = [
        "### Rounding: the same config and seed with 1, 2, 4 threads and AVX2/AVX-512 kernels (`python -m benchmarks.threads`)",
        "",
        "Shipped data, test split of the seed; `mlp.yaml` (full-batch L-BFGS, 200 × 20 iterations). Each fit in its own",
        "process on the 2-core AMD EPYC (AVX-512) sandbox, torch 2.13 CPU build with MKL; `avx2` restricts MKL, oneDNN and",
        "ATen to AVX2 kernels (another processor's summation order). Records made before the fit ran on one thread",
        "(`pinned: no`) show what the thread count did; seconds are upper bounds (other jobs ran beside them).",
        "",
        "| config | precision | seed | threads | kernels | pinned | global R² | cAIBN_0 R² | time R² | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(
        records, key=lambda r: (r["config"], r["precision"], r["seed"], r.get("isa", "native"), r["threads"])
    ):
        lines.append(
            f"| {r['config']} | {r['precision']} | {r['seed']} | {r['threads']} | {r.get('isa', 'native')} | "
            f"{'yes' if r.get('pinned') else 'no'} | {r['global_r2']:.4f} | {r['r2']['cAIBN_0']:.4f} | "
            f"{r['r2']['time']:.4f} | {r['seconds']:.0f} |"
        )
    path = out / "threads.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["mlp.yaml"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--precisions", nargs="+", default=["32-true", "64-true"])
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--isa", nargs="+", default=["native"], choices=sorted(ISA_ENV))
    p.add_argument("--out", default=str(REPO / "results" / "threads"))
    p.add_argument(
        "--pinned", action="store_true", help="mark the records: polyinv runs L-BFGS fits on one thread"
    )
    p.add_argument("--tag", default="", help="suffix of the record names (e.g. pinned)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for config in args.configs:
        for precision in args.precisions:
            for seed in args.seeds:
                for isa in args.isa:
                    for threads in args.threads:
                        tag = ("" if isa == "native" else f"_{isa}") + (f"_{args.tag}" if args.tag else "")
                        record = out / f"{Path(config).stem}_{precision}_seed{seed}_t{threads}{tag}.json"
                        if record.exists():
                            continue
                        result = one_fit(config, threads, precision, seed, isa) | {"pinned": args.pinned}
                        record.write_text(json.dumps(result, indent=1) + "\n")
                        print(json.dumps(result), flush=True)
    print(f"wrote {summary(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
