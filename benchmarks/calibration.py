"""How well a calibrated forward model reproduces a foreign simulator (issue 21's goals).

For each pair of suite sets made with the same kinetics and axis: calibrate polyinv's simulator on the
first file (as `polyinv calibrate` does: axis inferred from Mn/Mw, every row up to 432), re-simulate the
true recipes of the second file (another design) and compare with that file's rows: median Hellinger
distance of the MMDs, median |relative error| of Mn and Mw, median |error| of cBA_time, stop-time MAE.
Also polyinv's own kinetics on the inferred axis (what the trust checks used before), and the check
file's generator itself without noise (the floor set by the file's sampling noise). One core.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.suite import DATA_DIR, set_by_name

#: (calibrated on, checked on): same kinetics and axis, another design (and noise)
PAIRS = (
    ("grid_A", "lhs150_A"),
    ("onesided432_D", "lhs432_D_noise100000"),
    ("lhs432_C_noise20000", "clustered300_C"),
    ("lhs432_B", "grid_B_noise5000"),
)


def _read(name: str):
    from polyinv.data.io import read_table
    from polyinv.sim.calibrate import NEEDED

    return read_table(DATA_DIR / set_by_name(name).file, list(NEEDED), None)


def noise_floor(check_on: str) -> dict:
    """The check file against its own generator without noise: the floor of any forward model's residuals."""
    from polyinv.sim import simulate_many
    from polyinv.sim.calibration_quality import residual_summary

    from benchmarks.suite import AXES, KINETICS, moved_parameters

    spec = set_by_name(check_on)
    check = _read(check_on)
    sim = simulate_many(
        check[["cBA_0", "cAIBN_0", "temp"]],
        moved_parameters(KINETICS[spec.kinetics]),
        axis=AXES[spec.kinetics],
        progress=False,
    )
    return residual_summary(check, sim)


def run_pair(fit_on: str, check_on: str, out: Path) -> dict:
    from polyinv.sim.calibrate import calibrate
    from polyinv.sim.calibration_file import write_yaml
    from polyinv.sim.calibration_quality import residual_summary
    from polyinv.sim.forward import ForwardModel

    record_path = out / f"{fit_on}__{check_on}.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if "true_kinetics" not in record:
            record["true_kinetics"] = noise_floor(check_on)
            record_path.write_text(json.dumps(record, indent=1))
        return record
    train, check = _read(fit_on), _read(check_on)
    started = time.perf_counter()
    cal = calibrate(train, progress=False, data=fit_on, log=print)
    seconds = time.perf_counter() - started
    write_yaml(cal, out / f"{fit_on}.yaml")
    calibrated = residual_summary(check, cal.forward.simulate(check))
    own = ForwardModel({}, cal.forward.axis, cal.forward.t_max, cal.forward.x_stop)
    default = residual_summary(check, own.simulate(check))
    record = {
        "true_kinetics": noise_floor(check_on),
        "fit_on": fit_on,
        "check_on": check_on,
        "rows": cal.rows,
        "seconds": seconds,
        "simulations": cal.simulations,
        "axis": cal.axis_how,
        "fitted": {
            n: float(cal.table.loc[n, "value"])
            for n in cal.table.index
            if cal.table.loc[n, "status"] == "fitted"
        },
        "train_residuals": cal.residuals,
        "calibrated": calibrated,
        "polyinv_kinetics": default,
    }
    out.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=1))
    return record


def table(records: list[dict]) -> str:
    lines = [
        "| calibrated on → checked on | forward model | median Hellinger | Mn (median) | Mw (median) | cBA_time (median, mol/L) | stop time MAE (s) | calibration (s, 1 core) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        for label, key in (
            ("polyinv's kinetics", "polyinv_kinetics"),
            ("calibrated", "calibrated"),
            ("the generator itself (noise floor)", "true_kinetics"),
        ):
            m = r[key]
            cost = f"{r['seconds']:.0f} ({r['simulations']} sim.)" if key == "calibrated" else ""
            lines.append(
                f"| {r['fit_on']} → {r['check_on']} | {label} | {m['hellinger_median']:.4f} | "
                f"{100 * m['Mn_rel_median']:.2f} % | {100 * m['Mw_rel_median']:.2f} % | "
                f"{m['cBA_time_abs_median']:.4f} | {m['time_mae_s']:.1f} | {cost} |"
            )
    return "\n".join(lines)


def main(out: Path, pairs=PAIRS) -> Path:
    records = [run_pair(a, b, out) for a, b in pairs]
    text = (
        "# Calibrated forward model vs the foreign simulator (`python -m benchmarks calibration`)\n\n"
        + table(records)
        + "\n\nFitted parameters:\n\n"
        + "\n".join(
            f"- {r['fit_on']}: "
            + ", ".join(f"{k} {v:.3g}" for k, v in r["fitted"].items())
            + f"; axis {r['axis']}"
            for r in records
        )
        + "\n"
    )
    path = out / "calibration.md"
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":
    import sys

    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/calibration")))
