"""Calibrations as files, and the forward model of a training run's trust checks.

``polyinv calibrate`` writes a calibration as YAML (fitted values with their standard errors and sources,
the quality verdict, the axis and protocol); :func:`read_yaml` checks one before use. During ``fit``,
:func:`forward_for_training` picks the trust checks' forward model from ``trust.forward`` /
``trust.calibration`` and the training rows (docs/forward-model.md).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import yaml

from polyinv.atomic import atomic_path
from polyinv.errors import PolyinvWarning
from polyinv.schema import PROTOCOLS, SYSTEM, SYSTEMS, frame_mmd_columns
from polyinv.sim.calibrate import Calibration, calibrate
from polyinv.sim.calibration_quality import TRUST_FACTOR
from polyinv.sim.file_info import file_axis, protocol_from_data, read_file_metadata, states_default_kinetics
from polyinv.sim.forward import BY_NAME, ForwardChoice, ForwardModel
from polyinv.sim.grid import MMDAxis

#: Largest activation-energy shift a calibration file may state, kJ/mol. Reported activation energies of one
#: radical reaction scatter by tens of kJ/mol at most (IUPAC benchmark reviews of kp; termination and transfer
#: values span ~0-40 kJ/mol), so a shift beyond this is no kinetics but an error in the file.
MAX_ENERGY_SHIFT = 60.0


def check_plausible(name: str, value: float) -> None:
    """ValueError unless ``value`` of parameter ``name`` is physically plausible: a factor within the calibrator's
    own search range (``Parameter.low``-``high``: physics and the literature's spread, see ``source``), an energy
    shift within ±MAX_ENERGY_SHIFT kJ/mol."""
    p = BY_NAME[name]
    if p.kind == "factor":
        if not p.low * (1 - 1e-6) <= value <= p.high * (1 + 1e-6):  # a file's values are rounded
            raise ValueError(
                f"kinetic parameter {name} {value:.6g} lies outside the plausible factor range "
                f"{p.low:.3g}-{p.high:.3g} x polyinv's value ({p.source.split(':')[0]})"
            )
    elif p.kind in ("value", "odds"):
        if not p.low - 1e-9 <= value <= p.high + 1e-9:
            raise ValueError(
                f"kinetic parameter {name} {value:.6g} lies outside its plausible range "
                f"{p.low:.3g} to {p.high:.3g} ({p.source.split(':')[0]})"
            )
    elif abs(value) > MAX_ENERGY_SHIFT:
        raise ValueError(
            f"kinetic parameter {name} {value:.6g} kJ/mol lies outside the plausible shift range "
            f"±{MAX_ENERGY_SHIFT:g} kJ/mol"
        )


def to_yaml_dict(cal: Calibration) -> dict:
    """The calibration as a human-readable mapping (written by ``polyinv calibrate``)."""
    a = cal.forward.axis
    params = {}
    for name, row in cal.table.iterrows():
        # values to 12 digits: a value at the end of its range must read back inside it
        entry = {
            "value": _round(row["value"], 12),
            "unit": row["unit"],
            "default": row["default"],
            "status": row["status"],
        }
        if row["status"].startswith("fitted"):
            entry["se"] = _round(row["se"])
            entry["se_is"] = row["se_kind"]
        entry["replaces"] = row["replaces"]
        entry["description"] = row["description"]
        params[name] = entry
    return {
        "polyinv_calibration": 1,
        "system": SYSTEMS[cal.forward.system].name,
        "system_key": cal.forward.system,
        "data": cal.data,
        "rows": cal.rows,
        "axis": {
            "log10m_min": _round(a.log10m_min),
            "log10m_max": _round(a.log10m_max),
            "n_points": a.n_points,
            "normalisation": a.normalisation,
            "how": cal.axis_how,
        },
        "protocol": {
            "kind": cal.forward.protocol,
            "t_max_s": cal.forward.t_max,
            "x_stop": _round(cal.forward.x_stop),
        },
        "parameters": params,
        "correlations": {
            r: {c: _round(v, 3) for c, v in row.items() if c != r} for r, row in cal.correlations.iterrows()
        },
        "residuals": {k: _round(v) for k, v in cal.residuals.items()},
        "quality": {
            "good": cal.quality.get("good"),
            "usable_for_checks": cal.quality.get("usable_for_checks"),
            "worst": cal.quality.get("worst"),
            "text": cal.quality.get("text"),
            "ratios_to_limits": cal.quality.get("ratios"),
            "limits": {k: _round(v) for k, v in (cal.quality.get("limits") or {}).items()},
            "mmd_noise_hellinger": _round(cal.quality.get("mmd_noise_hellinger", float("nan"))),
        },
        "weights_sigma": {k: _round(v) for k, v in cal.sigma.items()},
        "training_box": {
            SYSTEMS[cal.forward.system].column(k): [_round(v) for v in lohi]
            for k, lohi in (cal.forward.fit or {}).get("box", {}).items()
        },
        **({"inversion": cal.forward.fit["inversion"]} if (cal.forward.fit or {}).get("inversion") else {}),
        "cost": {"seconds": round(cal.seconds, 1), "simulations": cal.simulations},
    }


def _round(value, digits: int = 6):
    value = float(value)
    return float(f"{value:.{digits}g}") if math.isfinite(value) else None


def write_yaml(cal: Calibration, path: str | Path, overwrite: bool = True) -> Path:
    """Write the calibration atomically; the header says what the file is."""

    path = Path(path)
    text = (
        "# polyinv calibration: polyinv's kinetic simulator fitted to a data file's recipe -> outcome rows.\n"
        "# parameters: value (a factor on polyinv's coefficient, or kJ/mol added to its activation energy at a\n"
        "# fixed value at 70 °C), standard error, and the default it replaces. Use it with\n"
        "# `polyinv simulate --recipes FILE --calibration THIS.yaml` or `polyinv fit --trust.calibration THIS.yaml`.\n"
    )
    text += yaml.safe_dump(to_yaml_dict(cal), sort_keys=False, allow_unicode=True, width=110)
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def read_yaml(path: str | Path) -> ForwardModel:
    """The forward model of a calibration file (ValueError naming the key for anything malformed)."""

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("polyinv_calibration") != 1:
        raise ValueError(f"{path}: not a polyinv calibration (no 'polyinv_calibration: 1')")
    by_name = {s.name: key for key, s in SYSTEMS.items()}
    key = data.get("system_key", by_name.get(data.get("system", SYSTEM.name)))  # older files: the name alone
    if key not in SYSTEMS:
        raise ValueError(
            f"{path}: a calibration of system {data.get('system_key', data.get('system'))!r}; polyinv knows "
            f"{', '.join(SYSTEMS)}"
        )
    try:
        a = data["axis"]
        axis = MMDAxis(
            float(a["log10m_min"]),
            float(a["log10m_max"]),
            int(a.get("n_points", 100)),
            a.get("normalisation", "density"),
        )
        values = {name: float(entry["value"]) for name, entry in (data.get("parameters") or {}).items()}
        implausible = []
        for name, value in values.items():
            if name in BY_NAME and math.isfinite(value):
                try:
                    check_plausible(name, value)
                except ValueError as exc:
                    implausible.append(str(exc))
        proto = data.get("protocol") or {}
        kind = str(proto.get("kind", "stop"))
        if kind not in PROTOCOLS:
            raise ValueError(f"protocol kind {kind!r} unknown; choose one of {', '.join(PROTOCOLS)}")
        t_max, x_stop = float(proto.get("t_max_s", 3600.0)), float(proto.get("x_stop", 0.9))
        if kind == "sampled":  # each sample runs to its own time: no stop conversion
            x_stop = min(x_stop, 0.999)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed calibration ({exc})") from None
    if implausible:
        raise ValueError(f"{path}: {implausible[0]}")
    if not (0 < t_max < float("inf") and 0 < x_stop < 1):
        raise ValueError(
            f"{path}: protocol t_max_s {t_max:g} / x_stop {x_stop:g} out of range (t_max_s a positive "
            f"number of seconds, x_stop between 0 and 1)"
        )
    quality = data.get("quality") if isinstance(data.get("quality"), dict) else None
    if quality and quality.get("good") is False:
        warnings.warn(PolyinvWarning(f"{path}: quality poor: {quality.get('text')}"), stacklevel=2)
    try:
        renames = SYSTEMS[key].renames
        box = {
            renames.get(k, k): [float(v[0]), float(v[1])] for k, v in (data.get("training_box") or {}).items()
        }
        sigma = {str(k): float(v) for k, v in (data.get("weights_sigma") or {}).items() if v is not None}
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{path}: malformed calibration (training_box / weights_sigma: {exc})") from None
    fit = {"residuals": data.get("residuals"), "axis": a.get("how", ""), "quality": quality, "sigma": sigma}
    if box:
        fit["box"] = box
    if isinstance(data.get("inversion"), dict):
        fit["inversion"] = data["inversion"]
    forward = ForwardModel(values, axis, t_max, x_stop, f"calibration {path.name}", fit, key, kind)
    try:
        _ = forward.parameters  # names known to the system's scheme and values usable
    except ValueError as exc:
        raise ValueError(f"{path}: malformed calibration ({exc})") from None
    return forward


def forward_for_training(
    setting: str,
    calibration: str | None,
    data_path,
    fit_frame: pd.DataFrame,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
    system: str = SYSTEM.key,
    protocol: str = "stop",
    axis: MMDAxis | None = None,
) -> ForwardChoice:
    """The forward model of a training file's trust checks (``trust.forward`` / ``trust.calibration`` of a
    run), from its training rows only; (None, why) when the checks must be off. A file of ``system`` uses that
    system's literature kinetics. The checks simulate whole runs (the stop protocol): a model of sampled rows
    has none (``predict --calibration`` answers such rows against a calibration). ``axis``: the file's MMD axis as
    the run states it (``data.axis``), before its metadata's or one inferred from Mn/Mw."""

    say = log or (lambda _m: None)
    if protocol != "stop":
        why = (
            "the trust checks (forward consistency, --verify, --refine) simulate runs under the stop protocol, "
            "not samples at their own times; `polyinv predict --calibration` inverts sampled rows instead"
        )
        say(f"forward checks off: {why}")
        return ForwardChoice(None, why)
    if calibration:
        forward = read_yaml(calibration)
        n_mmd = len(frame_mmd_columns(fit_frame))
        if forward.system != system or forward.protocol != "stop" or forward.axis.n_points != n_mmd:
            raise ValueError(
                f"trust.calibration {calibration}: a calibration of system {forward.system}, protocol "
                f"{forward.protocol}, {forward.axis.n_points} MMD points; the training file is {system}, stop, "
                f"{n_mmd} points"
            )
        if axis is not None and forward.axis != axis:
            raise ValueError(
                f"trust.calibration {calibration}: its MMD axis {forward.axis} is not data.axis {axis}"
            )
        quality = (forward.fit or {}).get("quality") or {}
        if quality.get("good") is False and not quality.get("usable_for_checks"):
            why = f"trust.calibration {calibration}: {quality.get('text')}"
            say(f"warning: forward checks off (domain consistency, --verify, --refine): {why}")
            return ForwardChoice(None, why)
        if quality.get("good") is False:
            say(_usable_text(quality))
        return ForwardChoice(forward, f"{forward.describe()} (trust.calibration)")
    if setting == "none":
        return ForwardChoice(None, "trust.forward is none")
    meta = read_file_metadata(data_path)
    axis, how = (axis, "given with data.axis") if axis is not None else file_axis(meta, fit_frame)
    if axis is None:
        say(f"warning: forward checks off (domain consistency, --verify): {how}")
        return ForwardChoice(None, how)
    t_max, x_stop = protocol_from_data(fit_frame)
    if setting == "default" or (setting == "auto" and states_default_kinetics(meta, system)):
        why = (
            "the file's metadata states polyinv's default kinetics"
            if setting == "auto"
            else "trust.forward is default"
        )
        forward = ForwardModel(
            {}, axis, t_max, x_stop, f"polyinv's kinetics ({why}); axis {how}", system=system
        )
        return ForwardChoice(forward, forward.describe())
    if setting == "auto":
        say(
            "the file does not state polyinv's default kinetics: calibrating the simulator on the training rows "
            "for the trust checks (trust.forward: auto; `polyinv calibrate` makes a reusable file)"
        )
    cal = calibrate(fit_frame, axis, progress=progress, data=str(data_path), log=say, system=system)
    cal.forward.fit["axis"] = how
    r = cal.residuals
    if not cal.quality["good"] and cal.quality["usable_for_checks"]:  # calibrate() said the warning line
        say(_usable_text(cal.quality))
        return ForwardChoice(cal.forward, cal.forward.describe())
    if not cal.quality["good"]:
        why = f"{cal.quality['text']} (on {r['rows']} training rows)"
        say(
            "forward checks off (domain consistency, --verify, --refine, design): the calibrated simulator does "
            "not reproduce the training rows; the domain flag rests on the input space alone"
        )
        return ForwardChoice(None, why)
    say(
        f"calibrated forward model: median Hellinger {r['hellinger_median']:.4f}, Mn {100 * r['Mn_rel_median']:.2f} %, "
        f"stop time MAE {r['time_mae_s']:.1f} s on {r['rows']} training rows ({cal.seconds:.0f} s)"
    )
    return ForwardChoice(cal.forward, cal.forward.describe())


def _usable_text(quality: Mapping) -> str:
    ratios = quality.get("ratios") or quality.get("ratios_to_limits") or {}
    worst = quality.get("worst")
    ratio = ratios.get(worst, float("nan")) if worst else float("nan")
    return (
        f"warning: forward checks on with a calibration outside its goals (worst: {worst} {ratio:.2g}x its limit, "
        f"within the {TRUST_FACTOR:g}x the checks tolerate): the consistency thresholds come from the training "
        f"rows' own residuals and hold this error; --verify distances include it"
    )
