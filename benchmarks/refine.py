"""``predict --refine`` measured: the model's answer vs the refined one on held-out test rows.

Each (set, model, seed) is an ordinary ``polyinv fit`` with the trust settings a user gets (``trust.forward
auto``: the simulator calibrated on the training rows for a foreign file, polyinv's kinetics for a file of
polyinv's; ``trust.refine auto``: the fit-time check on held-out training rows), then the test rows are
refined through the same code as ``polyinv predict --refine``. Records in ``<out>/<set>/records``, the table
in ``<out>/refine.md``.

  python -m benchmarks refine [--sets lhs432_B ...] [--models gp] [--seeds 0 1 2]   (results/refine)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from polyinv.atomic import atomic_path
from polyinv.errors import PolyinvError
from polyinv.metrics import evaluate, write_json
from polyinv.schema import COMPOSITE_COLUMNS

from benchmarks.harness import local, portable

#: Files made by polyinv's own simulator that the refine benchmark makes once in benchmarks/data (seed 0), the case
#: where the forward model is the generator: name -> (design, recipes, chains per MMD or None for exact MMDs).
POLYINV_SETS = {"lhs125_polyinv": ("lhs", 125, None), "lhs432_polyinv_noise20000": ("lhs", 432, 20000)}
#: Every set the refine benchmark knows beyond the suite: those, the shipped grid and results/noisy20000's grid.
EXTRA_SETS = ("grid432", "grid432_noise20000", *POLYINV_SETS)


def data_path(name: str, root: Path) -> Path:
    from benchmarks.suite import DATA_DIR, make_set, set_by_name

    if name == "grid432_noise20000":
        from benchmarks.harness import noisy_grid

        return noisy_grid(root / "results/noisy20000/grid432_noise20000.xlsx", 20000)
    if name == "grid432":
        return root / "data" / "ba_aibn_grid432.xlsx"  # the shipped default data
    if name in POLYINV_SETS:
        from polyinv.sim.dataset import generate

        design, n, chains = POLYINV_SETS[name]
        path = DATA_DIR / f"{name}.csv"
        if not path.exists():
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            generate(design, str(path), n=n, seed=0, noise_chains=chains, progress=False)
        return path
    spec = set_by_name(name)
    path = DATA_DIR / spec.file
    if not path.exists():
        make_set(spec)
    return path


def run_one(
    name: str, model: str, seed: int, root: Path, out: Path, force: bool = False, candidates: int = 0
) -> dict:
    """Fit with the user's trust settings, then refine the test rows; cached in ``out/<name>/records``."""
    from polyinv.models import load_model, resolve_checkpoint

    from benchmarks import harness as bm

    record_path = out / name / "records" / f"{model}_seed{seed}.json"
    if record_path.exists() and not force:
        record = json.loads(record_path.read_text())
        if not candidates or "candidates" in record or not record["used"]:
            return record
        if not local(record["run_dir"]).is_dir():  # the runs live in the session that made them
            raise PolyinvError(
                f"{record_path}: no candidates recorded and its run {record['run_dir']} is gone; "
                "pass --force to refit"
            )
        # the run is there: score its candidates without refitting
        record = score(
            load_model(resolve_checkpoint(local(record["run_dir"]))),
            name,
            model,
            seed,
            local(record["run_dir"]),
            data_path(name, root),
            record["fit_seconds"],
            record["check"],
            candidates,
        )
        write_json(record, record_path)
        return record
    data = data_path(name, root)
    started = time.perf_counter()
    fit = bm.run_one(
        model, seed, data, out / name, overrides={"trust.forward": "auto", "trust.refine": "auto"}, force=True
    )
    fit_seconds = time.perf_counter() - started
    run_dir = local(fit["run_dir"])
    check = json.loads((run_dir / "run.json").read_text()).get("refine_check")
    record = score(
        load_model(resolve_checkpoint(run_dir)),
        name,
        model,
        seed,
        run_dir,
        data,
        fit_seconds,
        check,
        candidates,
    )
    write_json(record, record_path)
    return record


def score(
    loaded,
    name: str,
    model: str,
    seed: int,
    run_dir: Path,
    data: Path,
    fit_seconds: float,
    check,
    candidates: int = 0,
) -> dict:
    """The record of one run: its test rows' answers and refined answers (as ``predict --refine`` gives them);
    with ``candidates`` K also those of ``--candidates K`` (see :func:`score_candidates`)."""
    from polyinv.data.io import read_table
    from polyinv.inference import predict_frame
    from polyinv.refine import model_refine, refine_columns

    rows = pd.read_csv(run_dir / "predictions_test.csv")["row"].to_numpy()
    sheet = "compuesta" if data.suffix == ".xlsx" else None
    frame = read_table(data, list(COMPOSITE_COLUMNS), sheet=sheet).iloc[rows].reset_index(drop=True)
    names = list(loaded.target_names)
    truth = frame[names].to_numpy(np.float64)
    answer = predict_frame(loaded, frame)
    _, _, why = model_refine(loaded)
    started = time.perf_counter()
    result = refine_columns(loaded, frame, answer, progress=False)
    seconds = time.perf_counter() - started
    refined = answer if result is None else result[0]
    record = {
        "set": name,
        "model": model,
        "seed": int(seed),
        "run_dir": portable(run_dir),
        "rows": int(len(frame)),
        "used": result is not None,
        "why": why,
        "check": check,
        "model_metrics": evaluate(truth, answer, names),
        "refined_metrics": evaluate(truth, refined, names),
        "seconds_per_row": seconds / max(len(frame), 1) if result is not None else 0.0,
        "fit_seconds": fit_seconds,
        "changed": float(result[1]["refine_changed"].mean()) if result is not None else 0.0,
    }
    if candidates and result is not None:
        record["candidates"] = score_candidates(loaded, frame, answer, refined, truth, candidates)
    return record


def score_candidates(
    loaded, frame: pd.DataFrame, answer: np.ndarray, refined: np.ndarray, truth: np.ndarray, k: int
) -> dict:
    """``--candidates k`` on the test rows: how many distinct recipes each row gets, the first candidate's global R²,
    and the best-of-k R² (per row the candidate nearest the true recipe, in units of each target's spread over the
    rows: what a chemist who tries every candidate could reach). A row without a candidate (its optimum contradicts
    the row's stop, see docs/refine.md) counts with its ``--refine`` answer; ``answer``: the model's, as predict
    gives it to ``--candidates``."""
    from polyinv.refine import candidate_columns

    names = list(loaded.target_names)
    started = time.perf_counter()
    table = candidate_columns(loaded, frame, answer, k, progress=False)
    seconds = time.perf_counter() - started
    found = np.stack(
        [table[[f"candidate{j}_{t}" for t in names]].to_numpy(np.float64) for j in range(1, k + 1)], axis=1
    )
    present = np.isfinite(found).all(axis=2)
    counts = present.sum(axis=1)
    found[counts == 0, 0] = refined[counts == 0]
    first = found[np.arange(len(found)), np.where(counts == 0, 0, present.argmax(axis=1))]
    spread = truth.std(axis=0)
    distance = np.sqrt(np.nansum(((found - truth[:, None, :]) / spread) ** 2, axis=2))
    distance[np.isnan(found).any(axis=2)] = np.inf
    nearest = found[np.arange(len(found)), distance.argmin(axis=1)]
    return {
        "k": k,
        "mean_count": float(counts.mean()),
        "rows_with_several": float((counts > 1).mean()),
        "first_metrics": evaluate(truth, first, names),
        "best_of_k_metrics": evaluate(truth, nearest, names),
        "seconds_per_row": seconds / max(len(frame), 1),
    }


def recheck(out: Path, root: Path, names: Sequence[str] | None = None, progress=print) -> Path:
    """Every recorded run again without refitting: the fit-time refine check on the run's own held-out training
    rows (rebuilt from its config) with the code as it is now, then its test rows refined. For changes to
    refinement alone; the records say ``rechecked``."""
    from polyinv.config import load_yaml
    from polyinv.models import load_model, resolve_checkpoint
    from polyinv.runner import refine_check, refine_rows
    from polyinv.sim.forward import ForwardChoice
    from polyinv.train import build_datamodule
    from polyinv.trust.domain import model_forward

    for path in sorted(out.glob("*/records/*_seed*.json")):
        old = json.loads(path.read_text())
        if names and old["set"] not in names:
            continue
        run_dir = local(old["run_dir"])
        config = load_yaml(run_dir / "config.yaml")
        dm = build_datamodule(config)
        dm.setup("fit")
        loaded = load_model(resolve_checkpoint(run_dir))
        forward, _ = model_forward(loaded)
        loaded.domain = refine_check(
            config, loaded, refine_rows(dm, loaded), ForwardChoice(forward, ""), verbose=False
        )
        check = loaded.domain.get("refine")
        record = score(
            loaded,
            old["set"],
            old["model"],
            old["seed"],
            run_dir,
            data_path(old["set"], root),
            old["fit_seconds"],
            check,
            old.get("candidates", {}).get("k", 0),
        ) | {"rechecked": True}
        write_json(record, path)
        progress(
            f"{old['set']} {old['model']} seed {old['seed']}: {record['model_metrics']['global']['r2']:.4f} -> "
            f"{record['refined_metrics']['global']['r2']:.4f} ({'refined' if record['used'] else 'declined'})"
        )
    return write_table(out)


def _pm(values: Sequence[float]) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}" if len(values) > 1 else f"{values.mean():.4f}"


def write_table(out: Path) -> Path:
    """``out/refine.md``: per set and model, global and per-target R² of the model's answers and of the refined
    ones (mean ± std over seeds), how often the fit-time check let refinement run, and its cost per row."""
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*/records/*_seed*.json"))]
    lines = [
        "# Answers refined against the forward model (`python -m benchmarks refine`; docs/refine.md)",
        "",
        "| set | model | seeds | global R², model | global R², --refine | Δ (worst seed) | cAIBN_0 model → refined | "
        "time model → refined | refinement used | s per row |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    frame = pd.DataFrame(
        [
            {
                "set": r["set"],
                "model": r["model"],
                "seed": r["seed"],
                "used": r["used"],
                "m": r["model_metrics"]["global"]["r2"],
                "r": r["refined_metrics"]["global"]["r2"],
                "mI": r["model_metrics"]["targets"]["cAIBN_0"]["r2"],
                "rI": r["refined_metrics"]["targets"]["cAIBN_0"]["r2"],
                "mt": r["model_metrics"]["targets"]["time"]["r2"],
                "rt": r["refined_metrics"]["targets"]["time"]["r2"],
                "spr": r["seconds_per_row"],
            }
            for r in records
        ]
    )
    for (name, model), sub in [] if frame.empty else frame.groupby(["set", "model"], sort=False):
        delta = sub.r - sub.m
        spr = sub.spr[sub.used]
        lines.append(
            f"| {name} | {model} | {len(sub)} | {_pm(sub.m)} | {_pm(sub.r)} | {delta.mean():+.4f} ({delta.min():+.4f}) | "
            f"{sub.mI.mean():.3f} → {sub.rI.mean():.3f} | {sub.mt.mean():.3f} → {sub.rt.mean():.3f} | "
            f"{int(sub.used.sum())}/{len(sub)} | {spr.median():.2f} |"
            if len(spr)
            else f"| {name} | {model} | {len(sub)} | {_pm(sub.m)} | {_pm(sub.r)} | {delta.mean():+.4f} ({delta.min():+.4f}) | "
            f"{sub.mI.mean():.3f} → {sub.rI.mean():.3f} | {sub.mt.mean():.3f} → {sub.rt.mean():.3f} | 0/{len(sub)} | |"
        )
    lines += [
        "",
        "Test rows of each seed's 80/20 split; the fit used `trust.forward auto` and `trust.refine auto`; where the "
        "fit-time check declined, the refined column equals the model's. s per row: refinement of the test rows, "
        "one process (2-core machine, other jobs running).",
        "",
    ]
    with_candidates = [r for r in records if "candidates" in r]
    if with_candidates:
        lines += [
            "`--candidates K` on the test rows (runs where refinement is used): distinct recipes per row, the first "
            "candidate's global R² and the best of the K (per row the candidate nearest the true recipe, each target "
            "in units of its spread: what trying every candidate could reach).",
            "",
            "| set | model | seed | K | recipes per row (rows with several) | global R², first | global R², best of K | s per row |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in with_candidates:
            c = r["candidates"]
            lines.append(
                f"| {r['set']} | {r['model']} | {r['seed']} | {c['k']} | {c['mean_count']:.2f} ({c['rows_with_several']:.0%}) | "
                f"{c['first_metrics']['global']['r2']:.4f} | {c['best_of_k_metrics']['global']['r2']:.4f} | {c['seconds_per_row']:.2f} |"
            )
        lines.append("")
    path = out / "refine.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


def main(
    names: Sequence[str],
    models: Sequence[str],
    seeds: Sequence[int],
    root: Path,
    out: Path,
    force: bool = False,
    progress=print,
    candidates: int = 0,
) -> Path:
    for name in names:
        for model in models:
            for seed in seeds:
                r = run_one(name, model, seed, root, out, force, candidates)
                progress(
                    f"{name} {model} seed {seed}: {r['model_metrics']['global']['r2']:.4f} -> "
                    f"{r['refined_metrics']['global']['r2']:.4f} ({'refined' if r['used'] else 'declined'}; {r['why']})"
                )
    return write_table(out)


def design_benchmark(out: Path, n: int = 20, seed: int = 7, tolerance: float = 0.05, progress=print) -> Path:
    """``polyinv design`` on ``n`` property targets inside the domain: the Mn, Mw and conversion of recipes of a
    Latin hypercube in the study's ranges, simulated with polyinv's kinetics; does the best proposal meet every
    target within ``tolerance`` when simulated, and how long does a design take. ``out/design.md``."""
    from polyinv.design import design
    from polyinv.schema import NOMINAL_RANGES
    from polyinv.sim import lhs_design
    from polyinv.sim.forward import ForwardModel

    forward = ForwardModel()
    truth = forward.simulate(lhs_design(n, seed=seed))
    bounds = {k: NOMINAL_RANGES[k] for k in ("cBA_0", "cAIBN_0", "temp")} | {"time": (60.0, forward.t_max)}
    rows = []
    for i, row in truth.iterrows():
        targets = {"Mn": row["Mn"], "Mw": row["Mw"], "conversion": 1 - row["cBA_time"] / row["cBA_0"]}
        started = time.perf_counter()
        result = design(forward, targets, bounds, tolerance=tolerance)
        seconds = time.perf_counter() - started
        best = result.table.iloc[0]
        rows.append(
            {
                "target": i,
                **{k: float(v) for k, v in targets.items()},
                "met": result.met,
                "worst_miss": float(best["worst_miss"]),
                "seconds": seconds,
                "proposals": len(result.table),
            }
        )
        progress(
            f"design target {i}: Mn {targets['Mn']:.0f}, Mw {targets['Mw']:.0f}, conversion {targets['conversion']:.3f} -> "
            f"{'met' if result.met else 'not met'} (worst miss {best['worst_miss']:.2%}, {seconds:.0f} s)"
        )
    frame = pd.DataFrame(rows)
    text = (
        "# Recipes designed for target properties (`python -m benchmarks refine --sets design`)\n\n"
        f"{int(frame.met.sum())} of {n} targets met within {tolerance:.0%} (worst miss of the best proposal: median "
        f"{frame.worst_miss.median():.2%}, max {frame.worst_miss.max():.2%}); {frame.seconds.median():.0f} s per design "
        f"(median, one process, 48 starts).\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "design.csv", index=False)
    path = out / "design.md"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def design_mmd_benchmark(
    out: Path,
    root: Path,
    n: int = 20,
    seed: int = 7,
    tolerance: float = 0.05,
    mmd_tolerance: float = 0.02,
    progress=print,
) -> Path:
    """``polyinv design --mmd`` on ``n`` target MMDs (noise-free, of Latin-hypercube recipes simulated with polyinv's
    kinetics; Mn and Mw computed from the MMD as for a file without them), twice: from 48 Latin-hypercube starts
    alone, and from a GP's answers (trained on the shipped grid, seed 0) plus 12 (the command adds them to 48).
    Does the best proposal meet every target, re-simulated; how much faster than the recipe that made the target;
    seconds, the model's answers included. ``out/design_mmd.md``."""
    from polyinv.design import assumed_conversions, design, inverse_starts
    from polyinv.metrics import hellinger
    from polyinv.models import load_model, resolve_checkpoint
    from polyinv.schema import MMD_COLUMNS, NOMINAL_RANGES
    from polyinv.sim import lhs_design
    from polyinv.sim.forward import ForwardModel
    from polyinv.sim.grid import moments_from_mmd

    from benchmarks import harness as bm

    forward = ForwardModel()
    truth = forward.simulate(lhs_design(n, seed=seed))
    bounds = {k: NOMINAL_RANGES[k] for k in ("cBA_0", "cAIBN_0", "temp")} | {"time": (60.0, forward.t_max)}
    fit = bm.run_one("gp", 0, root / "data" / "ba_aibn_grid432.xlsx", out / "design_model")
    model = load_model(resolve_checkpoint(local(fit["run_dir"])))
    conversions = assumed_conversions(forward)
    rows = []
    for i, row in truth.iterrows():
        mmd = row[list(MMD_COLUMNS)].to_numpy(np.float64)
        mn, mw = (float(v[0]) for v in moments_from_mmd(mmd[None, :], forward.axis))
        for how, n_starts, with_model in (
            ("48 Latin-hypercube starts", 48, False),
            ("GP answers + 12", 12, True),
        ):
            started = time.perf_counter()
            starts = inverse_starts(model, mmd, mn, mw, conversions, bounds) if with_model else None
            result = design(
                forward,
                {"Mn": mn, "Mw": mw},
                bounds,
                tolerance=tolerance,
                n_starts=n_starts,
                mmd=mmd,
                mmd_tolerance=mmd_tolerance,
                starts=starts,
            )
            seconds = time.perf_counter() - started
            if not len(result.table):
                raise PolyinvError(f"design --mmd target {i}: no proposal came back")
            best = result.table.iloc[0]
            again = forward.simulate(
                pd.DataFrame({k: [best[k]] for k in ("cBA_0", "cAIBN_0", "temp")}),
                t_max=np.array([best["time"]]),
            )
            h = float(hellinger(mmd, again[list(MMD_COLUMNS)].to_numpy(np.float64))[0])
            rows.append(
                {
                    "target": i,
                    "starts": how,
                    "met": bool(result.met and h <= mmd_tolerance),
                    "hellinger": h,
                    "worst_miss": float(best["worst_miss"]),
                    "time": float(best["time"]),
                    "target_time": float(row["time"]),
                    "seconds": seconds,
                }
            )
            progress(
                f"design --mmd target {i} ({how}): {'met' if rows[-1]['met'] else 'not met'} (Hellinger {h:.4f}, "
                f"time {best['time']:.0f} s vs {row['time']:.0f} s, {seconds:.0f} s)"
            )
    frame = pd.DataFrame(rows)
    lines = [
        "# Recipes designed for target MMDs (`python -m benchmarks refine --sets design_mmd`)",
        "",
        f"{n} noise-free target MMDs of Latin-hypercube recipes (polyinv's kinetics); tolerances: Hellinger "
        f"{mmd_tolerance:g}, Mn and Mw {tolerance:.0%}; the best proposal re-simulated.",
        "",
        "| starts | targets met | Hellinger of the best, median (max) | time of the best / the target recipe's, median | s per design, median |",
        "|---|---|---|---|---|",
    ]
    for how, sub in frame.groupby("starts", sort=False):
        lines.append(
            f"| {how} | {int(sub.met.sum())}/{len(sub)} | {sub.hellinger.median():.4f} ({sub.hellinger.max():.4f}) | "
            f"{(sub.time / sub.target_time).median():.2f} | {sub.seconds.median():.0f} |"
        )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "design_mmd.csv") as tmp:
        frame.to_csv(tmp, index=False)
    path = out / "design_mmd.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path
