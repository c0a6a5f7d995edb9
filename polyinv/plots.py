"""Every figure polyinv draws, in one place (matplotlib ``Figure`` objects, never pyplot: drawing switches no
backend and keeps no global state): parity plots of a run, the calibration figure, permutation
importances, design results, refine candidates and the verify rows. Each function only draws and writes a
PNG atomically (``write_figure``); the numbers come from the modules that compute them (calibration, refine,
verify, design), a figure of simulated MMDs runs the forward model it is given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from polyinv.atomic import atomic_path
from polyinv.metrics import r2_score
from polyinv.models.base import InverseModel
from polyinv.schema import (
    INITIATOR_0,
    MN,
    MONOMER_0,
    MW,
    RECIPE_COLUMNS,
    SIDE_INPUTS,
    TARGETS,
    TEMP,
    TIME,
    UNITS,
    frame_conversion,
    frame_mmd_columns,
)
from polyinv.sim.calibrate import Calibration
from polyinv.sim.forward import ForwardModel
from polyinv.trust.domain import model_forward
from polyinv.trust.verify import resimulate


def write_figure(fig, path: str | os.PathLike, dpi: int = 110, overwrite: bool = True) -> None:
    """Save a matplotlib figure as PNG atomically (see ``atomic_path``)."""
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def parity_figure(y_true, y_pred, targets: Sequence[str] = TARGETS, title: str | None = None):
    """Predicted vs. true per target (matplotlib Figure), R² in each panel."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    fig = Figure(figsize=(3.2 * len(targets), 3.3))
    axes = fig.subplots(1, len(targets))
    for j, (ax, name) in enumerate(zip(np.atleast_1d(axes), targets, strict=True)):
        t, p = y_true[:, j], y_pred[:, j]
        low, high = min(t.min(), p.min()), max(t.max(), p.max())
        ax.plot([low, high], [low, high], "r--", lw=1)
        ax.scatter(t, p, s=8, alpha=0.7)
        r2 = r2_score(t, p)
        ax.set_title(f"{name}  R²={r2:.3f}", fontsize=9)
        ax.set_xlabel(f"true / {UNITS.get(name, '')}", fontsize=8)
        ax.set_ylabel(f"predicted / {UNITS.get(name, '')}", fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def importance_figure(table: pd.DataFrame, impurity: pd.DataFrame | None = None, title: str | None = None):
    """Heat map of R² drop (groups × targets), plus a bar chart of impurity importances when given."""
    wide = table.pivot(index="group", columns="target", values="r2_drop")
    wide = wide.loc[list(dict.fromkeys(table["group"])), list(dict.fromkeys(table["target"]))]
    panels = 2 if impurity is not None else 1
    fig = Figure(figsize=(4.2 * panels + 1.5, 0.32 * len(wide) + 1.8))
    axes = fig.subplots(1, panels, squeeze=False)
    ax = axes[0, 0]
    image = ax.imshow(wide.to_numpy(), aspect="auto", cmap="viridis")
    ax.set_xticks(range(wide.shape[1]), wide.columns, fontsize=8)
    ax.set_yticks(range(wide.shape[0]), wide.index, fontsize=7)
    ax.set_title("permutation importance: drop in R²", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.05)
    if impurity is not None:
        bx = axes[0, 1]
        bx.barh(range(len(impurity)), impurity["impurity_importance"])
        bx.set_yticks(range(len(impurity)), impurity["group"], fontsize=7)
        bx.invert_yaxis()
        bx.set_title("random forest impurity importance", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def calibration_figure(
    cal: Calibration, path: str | Path, n_overlays: int = 6, overwrite: bool = True
) -> Path:
    """Parity of Mn, Mw, conversion and stop time, and MMD overlays of a few rows (file vs calibrated), over
    the rows the calibration was fitted on."""
    sim, rows = cal.fitted_frame, cal.fitted_rows
    fig = Figure(figsize=(12, 7.2))
    axes = fig.subplots(2, 3)
    sampled = cal.forward.protocol == "sampled"
    panels = [
        (MN, "Mn / g mol⁻¹", True),
        (MW, "Mw / g mol⁻¹", True),
        (frame_conversion, "conversion", False),
        (TIME, "stop time / s", False),
    ]
    if sampled:  # the sample times are inputs: conversion over time instead of the stop time's parity
        ax = axes.flat[3]
        ax.plot(rows[TIME], frame_conversion(rows), "o", ms=3, label="file")
        ax.plot(sim[TIME], frame_conversion(sim), "x", ms=4, label="calibrated simulator")
        ax.set_xlabel("sample time / s")
        ax.set_ylabel("conversion")
        ax.legend(fontsize=7)
        panels = panels[:3]
    for ax, (col, label, log) in zip(axes.flat[: len(panels)], panels, strict=True):
        x = col(rows) if callable(col) else rows[col]
        y = col(sim) if callable(col) else sim[col]
        ax.plot(x, y, ".", ms=3, alpha=0.6)
        lo, hi = np.nanmin([x.min(), y.min()]), np.nanmax([x.max(), y.max()])
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(f"file: {label}")
        ax.set_ylabel(f"calibrated simulator: {label}")
    grid = cal.forward.axis.points()
    mmd = list(frame_mmd_columns(rows))
    picks = np.linspace(0, len(rows) - 1, n_overlays).round().astype(int)
    for ax, part in zip(axes.flat[4:], (picks[: n_overlays // 2], picks[n_overlays // 2 :]), strict=True):
        for k, i in enumerate(part):
            colour = f"C{k}"
            ax.plot(grid, rows[mmd].iloc[i], "-", color=colour, lw=1.6, label=f"row {i} file")
            ax.plot(grid, sim[mmd].iloc[i], "--", color=colour, lw=1.2)
        ax.set_xlabel("log10(M / g mol⁻¹)")
        ax.set_ylabel("MMD (file's normalisation)")
        ax.legend(fontsize=7, title="solid: file, dashed: calibrated", title_fontsize=7)
    r = cal.residuals
    outcome = (
        f"conversion {r['conversion_abs_median']:.3f}"
        if sampled
        else f"cBA_time {r['cBA_time_abs_median']:.3g} mol/L, stop time MAE {r['time_mae_s']:.0f} s"
    )
    fig.suptitle(
        f"{cal.forward.source}: median Hellinger {r['hellinger_median']:.3f}, Mn {100 * r['Mn_rel_median']:.1f} %, "
        f"Mw {100 * r['Mw_rel_median']:.1f} %, {outcome} (medians)",
        fontsize=10,
    )
    fig.tight_layout()
    write_figure(fig, path, overwrite=overwrite)
    return Path(path)


def plot_candidates(
    out_dir, model: InverseModel, frame: pd.DataFrame, table: pd.DataFrame, overwrite: bool = False
) -> list:
    """One PNG per row (``candidates_row<i>.png``): the input MMD and each candidate's simulated MMD, with the
    candidates' recipes in the legend. Atomic writes; nothing without candidate columns or a forward model."""
    forward, _ = model_forward(model)
    ks = sorted(
        {int(c.split("_")[0].removeprefix("candidate")) for c in table.columns if c.startswith("candidate")}
    )
    if forward is None or not ks:
        return []
    sims = {}
    for k in ks:
        recipes = table[[f"candidate{k}_{t}" for t in TARGETS]].set_axis(list(TARGETS), axis=1)
        have = recipes.notna().all(axis=1).to_numpy()
        if have.any():
            sims[k] = (have, resimulate(recipes[have].reset_index(drop=True), forward=forward)[0])
    grid, mmd = forward.axis.points(), frame[list(frame_mmd_columns(frame))].to_numpy(np.float64)
    written = []
    for i in range(len(frame)):
        fig = Figure(figsize=(7.5, 3.8))
        ax = fig.subplots()
        ax.plot(grid, mmd[i], "k-", lw=2.0, label="input")
        for k, (have, sim) in sims.items():
            if have[i]:
                j = int(np.cumsum(have)[i] - 1)
                r = table.iloc[i]
                ax.plot(
                    grid,
                    sim[list(frame_mmd_columns(sim))].to_numpy()[j],
                    "--",
                    lw=1.3,
                    label=f"candidate {k}: {r[f'candidate{k}_cBA_0']:.3g} mol/L, {r[f'candidate{k}_cAIBN_0']:.3g} mol/L, "
                    f"{r[f'candidate{k}_temp']:.1f} °C, {r[f'candidate{k}_time']:.0f} s "
                    f"(Hellinger {r[f'candidate{k}_hellinger']:.4f})",
                )
        ax.set_xlabel("log10(M / g mol⁻¹)")
        ax.set_ylabel("MMD")
        ax.set_title(f"row {i}: recipes that reproduce the input", fontsize=10)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(out_dir) / f"candidates_row{i:04d}.png"
        write_figure(fig, path, dpi=100, overwrite=overwrite)
        written.append(path)
    return written


def verify_figures(
    out_dir: str | Path,
    mmd: np.ndarray,
    sim: pd.DataFrame,
    recipes: pd.DataFrame,
    table: pd.DataFrame,
    true: pd.DataFrame | None = None,
    rows: Sequence[int] | None = None,
    forward: ForwardModel | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """One PNG per row: requested vs re-simulated MMD, and the predicted (and true) recipe. Atomic writes."""
    out_dir = Path(out_dir)
    grid = (forward or ForwardModel()).axis.points()
    sim_mmd = sim[list(frame_mmd_columns(sim))].to_numpy()
    written = []
    for i in rows if rows is not None else range(len(recipes)):
        fig = Figure(figsize=(9.5, 3.6))
        ax, box = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
        ax.plot(grid, mmd[i], "k-", lw=1.8, label="requested")
        ax.plot(grid, sim_mmd[i], "r--", lw=1.4, label="re-simulated from predicted recipe")
        ax.set_xlabel("log10(M / g mol⁻¹)")
        ax.set_ylabel("w(log M)")
        ax.set_title(f"row {i}: Hellinger distance {table['verify_hellinger'].iloc[i]:.4f}", fontsize=10)
        ax.legend(fontsize=8)
        lines = [f"{'':9}{'predicted':>12}" + (f"{'true':>12}" if true is not None else "")]
        for name in TARGETS:
            line = f"{name:<9}{recipes[name].iloc[i]:>12.5g}"
            if true is not None:
                line += f"{true[name].iloc[i]:>12.5g}"
            lines.append(f"{line}  {UNITS[name]}")
        for column in SIDE_INPUTS:
            err = table[f"verify_rel_err_{column}"].iloc[i]
            if np.isfinite(err):
                lines.append(f"rel. err {column}: {100 * err:+.2f} %")
        box.axis("off")
        box.text(0.0, 0.95, "\n".join(lines), family="monospace", fontsize=8.5, va="top")
        fig.tight_layout()
        path = out_dir / f"verify_row{i:04d}.png"
        write_figure(fig, path, dpi=100, overwrite=overwrite)
        written.append(path)
    return written


def design_figure(path: Path, forward, table, targets: dict, mmd=None, overwrite: bool = True) -> None:
    sim = forward.simulate(table[list(RECIPE_COLUMNS)], t_max=table[TIME].to_numpy())
    log_m = np.linspace(forward.axis.log10m_min, forward.axis.log10m_max, forward.axis.n_points)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    if mmd is not None:  # the target on the simulator's normalisation, for comparison
        shown = np.asarray(mmd, dtype=np.float64)
        ax.plot(
            log_m,
            shown / shown.sum() * sim[list(frame_mmd_columns(sim))].to_numpy(float).sum(axis=1).mean(),
            color="k",
            lw=2.5,
            alpha=0.5,
            label="target MMD",
        )
    for i, row in table.iterrows():
        ax.plot(
            log_m,
            sim.loc[i, list(frame_mmd_columns(sim))].to_numpy(float),
            label=f"#{row['rank']}: {row[MONOMER_0]:.2f} mol/L, {row[INITIATOR_0]:.4f} mol/L, {row[TEMP]:.1f} °C, {row[TIME]:.0f} s",
        )
    for name in (MN, MW):
        if name in targets:
            ax.axvline(
                np.log10(targets[name]), color="k", ls="--" if name == MN else ":", label=f"target {name}"
            )
    ax.set_xlabel("log10 M (g/mol)")
    ax.set_ylabel(f"MMD ({forward.axis.normalisation})")
    ax.legend(fontsize=7)
    write_figure(fig, path, overwrite=overwrite)
