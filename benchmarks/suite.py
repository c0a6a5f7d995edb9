"""The foreign-data suite: files that differ from the shipped grid the way users' files do
(``python -m benchmarks suite-data``, then ``python -m benchmarks suite``).

Each set is made by polyinv's simulator with its rate coefficients moved within the literature scatter
(kt over a factor 20 either way, kbb and kpt ±2×, f ±0.15, transfer ×0.3–3), on another design (grid,
Latin hypercube, small, clustered, one-sided), another MMD axis (range and normalisation) and with or
without KMC-like sampling noise. The files carry no polyinv metadata, as a user's file would not. They
are written into ``benchmarks/data/suite/`` (not committed: the command makes them again, the same to
floating-point precision).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from polyinv.atomic import atomic_path
from polyinv.schema import COMPOSITE_COLUMNS, NOMINAL_RANGES, SHEET_COMPOSITE
from polyinv.sim.designs import RECIPE_FIELDS, grid_design, lhs_design
from polyinv.sim.grid import MMDAxis
from polyinv.sim.parameters import DEFAULT_PARAMETERS, KineticParameters

DATA_DIR = Path(__file__).resolve().parent / "data" / "suite"

#: Kinetic variants: factors on polyinv's coefficients (kt scales kt_ss, kt_st and kt_tt together;
#: ``transfer`` scales C_M, C_S and C_S_mcr) and a shift of the initiator efficiency f.
KINETICS: dict[str, dict[str, float]] = {
    "A": {"kt": 0.5, "kbb": 0.5, "kpt": 1.0, "f": -0.10, "C_M": 1.0, "C_S": 1.0},
    "B": {"kt": 0.3, "kbb": 1.8, "kpt": 0.7, "f": +0.12, "C_M": 0.3, "C_S": 0.5},
    "C": {"kt": 1.0, "kbb": 1.5, "kpt": 2.0, "f": -0.15, "C_M": 3.0, "C_S": 2.0},
    "D": {"kt": 3.0, "kbb": 0.6, "kpt": 1.6, "f": +0.05, "C_M": 0.5, "C_S": 0.5},
}
#: MMD axes of the variants (log10 M range, normalisation).
AXES: dict[str, MMDAxis] = {
    "A": MMDAxis(2.0, 7.0, normalisation="sum"),
    "B": MMDAxis(2.5, 6.5, normalisation="density"),
    "C": MMDAxis(1.5, 7.5, normalisation="max"),
    "D": MMDAxis(2.2, 6.8, normalisation="sum"),
}


@dataclass(frozen=True)
class SuiteSet:
    """One data set of the suite."""

    name: str
    design: str  # grid, lhs, clustered, onesided
    n: int
    kinetics: str  # key of KINETICS (and of AXES)
    noise_chains: int | None
    file: str  # extension sets the format
    seed: int

    @property
    def noisy(self) -> bool:
        return self.noise_chains is not None


SETS: tuple[SuiteSet, ...] = (
    SuiteSet("grid_A", "grid", 432, "A", None, "grid_A.xlsx", 11),
    SuiteSet("lhs432_B", "lhs", 432, "B", None, "lhs432_B.csv", 12),
    SuiteSet("onesided432_D", "onesided", 432, "D", None, "onesided432_D.parquet", 13),
    SuiteSet("clustered300_C", "clustered", 300, "C", None, "clustered300_C.csv", 14),
    SuiteSet("lhs150_A", "lhs", 150, "A", None, "lhs150_A.csv", 15),
    SuiteSet("lhs432_C_noise20000", "lhs", 432, "C", 20000, "lhs432_C_noise20000.csv", 16),
    SuiteSet("grid_B_noise5000", "grid", 432, "B", 5000, "grid_B_noise5000.csv", 17),
    SuiteSet("lhs432_D_noise100000", "lhs", 432, "D", 100000, "lhs432_D_noise100000.parquet", 18),
)


def moved_parameters(
    factors: Mapping[str, float], base: KineticParameters = DEFAULT_PARAMETERS
) -> KineticParameters:
    """``base`` with its rate coefficients scaled (kt, kbb, kpt, C_M, C_S) and f shifted by ``factors``."""

    def scaled(coefficient, factor):
        return dataclasses.replace(
            coefficient, A=coefficient.A * factor, source=f"{coefficient.source} (x{factor:g})"
        )

    kt = factors.get("kt", 1.0)
    return base.replace(
        kt_ss=scaled(base.kt_ss, kt),
        kt_st=scaled(base.kt_st, kt),
        kt_tt=scaled(base.kt_tt, kt),
        kbb=scaled(base.kbb, factors.get("kbb", 1.0)),
        kpt=scaled(base.kpt, factors.get("kpt", 1.0)),
        f_values=tuple(v + factors.get("f", 0.0) for v in base.f_values),
        C_M=base.C_M * factors.get("C_M", 1.0),
        C_S=base.C_S * factors.get("C_S", 1.0),
        C_S_mcr=base.C_S_mcr * factors.get("C_S", 1.0),
    )


def _scale_unit(unit: np.ndarray) -> pd.DataFrame:
    lo = np.array([NOMINAL_RANGES[f][0] for f in RECIPE_FIELDS])
    hi = np.array([NOMINAL_RANGES[f][1] for f in RECIPE_FIELDS])
    return pd.DataFrame(lo + unit * (hi - lo), columns=list(RECIPE_FIELDS))


def design(kind: str, n: int, seed: int) -> pd.DataFrame:
    """Recipes of a suite design inside the nominal box.

    clustered: 10 centres, the recipes scattered around them (sd 6 % of each range); onesided: each factor
    drawn from a Beta(0.7, 2) law, crowded at one end of its range and sparse at the other (cBA_0 at the low end,
    cAIBN_0 and temp at the high end).
    """
    rng = np.random.default_rng(seed)
    if kind == "grid":
        return grid_design()
    if kind == "lhs":
        return lhs_design(n, seed)
    if kind == "clustered":
        centres = rng.uniform(0.05, 0.95, size=(10, 3))
        unit = centres[rng.integers(0, 10, size=n)] + rng.normal(0.0, 0.06, size=(n, 3))
        return _scale_unit(np.clip(unit, 0.0, 1.0))
    if kind == "onesided":
        unit = rng.beta(0.7, 2.0, size=(n, 3))
        unit[:, 1:] = 1.0 - unit[:, 1:]
        return _scale_unit(unit)
    raise ValueError(f"unknown suite design {kind!r}")


def make_set(spec: SuiteSet, folder: Path = DATA_DIR, progress: bool = False) -> Path:
    """Simulate one suite set into ``folder`` (no metadata: a foreign file states nothing about itself)."""
    from polyinv.sim import simulate_many

    params = moved_parameters(KINETICS[spec.kinetics])
    frame = simulate_many(
        design(spec.design, spec.n, spec.seed),
        params,
        noise_chains=spec.noise_chains,
        seed=spec.seed,
        axis=AXES[spec.kinetics],
        progress=progress,
    )
    frame = frame[list(COMPOSITE_COLUMNS)]
    path = folder / spec.file
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if path.suffix == ".xlsx":
            frame.to_excel(tmp, sheet_name=SHEET_COMPOSITE, index=False)
        elif path.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


def describe(spec: SuiteSet, frame: pd.DataFrame | None = None) -> dict:
    """What a set is: design, kinetics, axis, noise, and (given its rows) how its outcomes spread."""
    axis = AXES[spec.kinetics]
    info = {
        "set": spec.name,
        "design": spec.design,
        "rows": spec.n,
        "kinetics": KINETICS[spec.kinetics],
        "axis": f"log10 M {axis.log10m_min:g}-{axis.log10m_max:g}, {axis.normalisation}",
        "noise_chains": spec.noise_chains or "none",
    }
    if frame is not None:
        stopped = float((frame["time"] < 3600 * (1 - 1e-9)).mean())
        info.update(
            {
                "Mn_median": float(frame["Mn"].median()),
                "dispersity_median": float((frame["Mw"] / frame["Mn"]).median()),
                "stopped_early": stopped,
            }
        )
    return info


def make_all(folder: Path = DATA_DIR, sets: Sequence[SuiteSet] = SETS, progress=print) -> list[Path]:
    """Every set of the suite (existing files are made again) and ``suite.json`` describing them."""
    paths, infos = [], []
    for spec in sets:
        path = make_set(spec, folder)
        frame = (
            pd.read_excel(path)
            if path.suffix == ".xlsx"
            else pd.read_csv(path)
            if path.suffix == ".csv"
            else pd.read_parquet(path)
        )
        info = describe(spec, frame)
        infos.append(info)
        progress(
            f"{spec.name:>22}: {len(frame)} rows, Mn median {info['Mn_median']:.0f} g/mol, "
            f"Mw/Mn {info['dispersity_median']:.2f}, {info['stopped_early']:.0%} stopped early -> {path}"
        )
        paths.append(path)
    with atomic_path(folder / "suite.json") as tmp:
        tmp.write_text(json.dumps(infos, indent=1) + "\n")
    return paths


def set_by_name(name: str) -> SuiteSet:
    for spec in SETS:
        if spec.name == name:
            return spec
    raise KeyError(name)


def run_suite(
    sets: Sequence[SuiteSet],
    models: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    overrides: Mapping | None = None,
    force: bool = False,
    quick: bool = False,
    progress=print,
    cluster=None,
) -> None:
    """Every model × seed on every set (a missing data file is made first); one table per set in
    ``out/<set>/benchmark.md`` and the summary over every recorded set in ``out/suite.md``."""
    from benchmarks import harness as bm

    for spec in sets:
        path = DATA_DIR / spec.file
        if not path.exists():
            make_set(spec)
        progress(f"--- {spec.name}")
        bm.table(
            models,
            seeds,
            path,
            out / spec.name,
            set_title(spec),
            overrides=overrides,
            force=force,
            quick=quick,
            progress=progress,
            with_study=False,
            cluster=cluster,
        )
    write_summary(out)


def summary_frame(out: Path) -> pd.DataFrame:
    """Every record under ``out/<set>/records`` with its set's name."""
    from benchmarks import harness as bm

    frames = []
    for spec in SETS:
        paths = sorted((out / spec.name / "records").glob("*_seed*.json"))
        if paths:
            frame = bm.records_frame([json.loads(p.read_text()) for p in paths])
            frames.append(frame.assign(set=spec.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def set_title(spec: SuiteSet) -> str:
    info = describe(spec)
    return (
        f"{spec.name}: {spec.design} design, {spec.n} rows, kinetics {spec.kinetics}, {info['axis']}, "
        f"noise {info['noise_chains']}; 80/20 split"
    )


def write_summary(out: Path) -> Path:
    """``out/suite.md``: global R² per model and set (mean ± std over seeds, worst seed), and the sets; each
    set's ``benchmark.md`` made again from its records (records of several processes merge here)."""
    from benchmarks import harness as bm

    frame = summary_frame(out)
    for name, sub in [] if frame.empty else frame.groupby("set", sort=False):
        order = [m for m in bm.MODELS if m in set(sub.model)]
        text = bm.markdown_table(sub, order, set_title(set_by_name(name)), with_study=False)
        text += (
            "\nMean ± sample std over seeds "
            + ", ".join(map(str, sorted(set(sub.seed))))
            + "; train s: median per run.\n"
        )
        with atomic_path(out / name / "benchmark.md") as tmp:
            tmp.write_text(text)
    names = [spec.name for spec in SETS if not frame.empty and spec.name in set(frame.set)]
    lines = [
        "### Global R² on the foreign-data suite (mean ± std over seeds; worst seed in brackets)",
        "",
        "| model | " + " | ".join(names) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    models = [m for m in bm.MODELS if not frame.empty and m in set(frame.model)]
    for model in models:
        cells = []
        for name in names:
            sub = frame[(frame.model == model) & (frame.set == name)]
            cells.append(
                "" if sub.empty else f"{bm._pm(sub.global_r2, 4)} ({sub.global_r2.min():.4f}, n={len(sub)})"
            )
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| set | design | rows | kinetics (factors on polyinv's coefficients; f shifted) | MMD axis | noise (chains per MMD) |",
        "|---|---|---|---|---|---|",
    ]
    for spec in SETS:
        if spec.name in names:
            info = describe(spec)
            kin = ", ".join(
                f"{k} {f'{v:+.2f}' if k == 'f' else f'×{v:g}'}" for k, v in info["kinetics"].items()
            )
            lines.append(
                f"| {spec.name} | {spec.design} | {spec.n} | {spec.kinetics}: {kin} | {info['axis']} | {info['noise_chains']} |"
            )
    lines += [
        "",
        "Per-target figures: `results/suite/<set>/benchmark.md`. Data: `python -m benchmarks suite-data`.",
        "",
    ]
    path = out / "suite.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path
