"""The forward model of a data file: kinetic parameters, MMD axis and run protocol, as plain data.

polyinv's trust checks (forward consistency of the applicability domain, ``--verify``, ``--plot-dir``)
re-simulate predicted recipes. They are only meaningful with the forward model of the file the model was
trained on: its kinetics (polyinv's defaults, or a calibration, :mod:`polyinv.sim.calibrate`), its MMD
axis (stated in polyinv's metadata or inferred from Mn/Mw, :func:`polyinv.sim.grid.infer_axis`) and its
run protocol (the time limit and the conversion that stops a run). :class:`ForwardModel` holds the three
as plain numbers and strings, so it is stored inside model files (no code runs when they load).

Kinetics are described by :data:`PARAMETERS`: multiplicative factors on polyinv's rate coefficients and
activation-energy shifts that keep the value at :data:`T_REF` (the calibration's coordinates).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from polyinv.schema import PROTOCOLS, RECIPE_COLUMNS, SAMPLED_X_STOP, SYSTEMS, TIME
from polyinv.sim.grid import DEFAULT_AXIS, MMDAxis
from polyinv.sim.kinetics import DEFAULT_T_MAX, DEFAULT_X_STOP
from polyinv.sim.parameters import (
    DEFAULT_PARAMETERS,
    R_GAS,
    KineticParameters,
    RateCoefficient,
    parameters_of,
)
from polyinv.sim.simulate import simulate_many

T_REF = 70.0  # °C: an activation-energy shift leaves every coefficient's value here unchanged
VERSION = 1


@dataclass(frozen=True)
class Parameter:
    """One adjustable parameter of the kinetics. ``kind`` ``factor``: multiplies the coefficients named in
    ``targets`` (stored and fitted as its natural log); ``energy``: shifts their activation energy, kJ/mol;
    ``value``: sets a dimensionless setting of the scheme (0, polyinv's value, switches its mechanism off);
    ``odds``: adds to the log-odds of the fractions in ``targets`` (0 keeps them; each stays inside 0-1).
    ``low``/``high``: the range a calibration searches (a factor, or kJ/mol), from physics and the spread of
    the literature across solvents, methods and modelling schemes (``source``), not around polyinv's values."""

    name: str
    kind: str  # "factor" | "energy" | "value" | "odds"
    targets: tuple[str, ...]
    text: str
    low: float
    high: float
    source: str = ""

    @property
    def unit(self) -> str:
        return {
            "factor": "x default",
            "energy": "kJ/mol added to Ea",
            "value": "value",
            "odds": "added to the log-odds",
        }[self.kind]

    @property
    def scale(self) -> float:
        """Internal coordinate = value / scale (ln factor, shift / 10 kJ/mol, value / 0.1, log-odds): comparable steps."""
        return {"factor": 1.0, "energy": 10.0, "value": 0.1, "odds": 1.0}[self.kind]

    @property
    def default(self) -> float:
        """The value that leaves polyinv's kinetics unchanged (factor 1, shift 0, value 0)."""
        return 1.0 if self.kind == "factor" else 0.0

    def coordinate(self, value: float) -> float:
        """The solver's coordinate of ``value`` (ln factor, or shift / 10 kJ/mol)."""
        return math.log(value) if self.kind == "factor" else value / self.scale

    def value(self, coordinate: float) -> float:
        """The inverse of :meth:`coordinate`."""
        return math.exp(coordinate) if self.kind == "factor" else coordinate * self.scale

    @property
    def box(self) -> tuple[float, float]:
        """The search range in the solver's coordinates."""
        return self.coordinate(self.low), self.coordinate(self.high)


_KT = ("kt_ss", "kt_st", "kt_tt")
_EA = (
    "activation energies of one reaction differ by tens of kJ/mol across reports and between a lumped and "
    "a detailed scheme (e.g. effective vs chain-end propagation of acrylates)"
)
#: Every parameter a calibration may adjust (the identifiability analysis picks the ones a file determines).
PARAMETERS: tuple[Parameter, ...] = (  # least known first: the order in which a calibration considers them
    Parameter(
        "kt",
        "factor",
        _KT,
        "termination, all three kt together",
        0.001,
        100.0,
        "acrylate kt spans 1e6-1e9 L/(mol s) with chain length, conversion and solvent viscosity "
        "(composite-model and SP-PLP-EPR studies, Barner-Kowollik, Buback et al.): down to 7e5 (x0.001 of "
        "kt_ss 7.1e8 at 70 °C, the long-chain end) and two decades up",
    ),
    Parameter(
        "f",
        "factor",
        ("f",),
        "initiator efficiency f (radical production 2 f kd [I])",
        0.1 / 0.64,
        1.0 / 0.72,
        "physics: 0.1 <= f <= 1 at every temperature (azo initiators in solution 0.3-0.8, Moad & Solomon)",
    ),
    Parameter(
        "kbb",
        "factor",
        ("kbb",),
        "backbiting",
        0.1,
        10.0,
        "reported acrylate backbiting coefficients scatter ~x5 (Nikitin 2007, Willemse 2005, Barth 2010); "
        "a decade either way also holds another treatment of mid-chain radicals",
    ),
    Parameter("kpt", "factor", ("kpt",), "MCR propagation", 0.1, 10.0, "as kbb"),
    Parameter(
        "C_S",
        "factor",
        ("C_S", "C_S_mcr"),
        "transfer to solvent (SPR and MCR)",
        0.005,
        500.0,
        "transfer constants to common solvents span 1e-6 (benzene) to 1e-2 (carbon tetrachloride) and "
        "beyond (Polymer Handbook): 1e-6-0.1 around toluene's 2e-4",
    ),
    Parameter(
        "C_M",
        "factor",
        ("C_M",),
        "transfer to monomer",
        0.01,
        100.0,
        "monomer transfer constants of vinyl monomers 1e-6-1e-2 (Polymer Handbook)",
    ),
    Parameter(
        "alpha_t",
        "value",
        ("alpha_t",),
        "chain-length dependence of termination, kt ∝ nu^-alpha_t",
        0.0,
        0.8,
        "composite-model exponents: ~0.16 for long chains to 0.5-0.85 for short ones (Johnston-Hall & "
        "Monteiro 2008; Barner-Kowollik & Russell 2009); 0 is polyinv's chain-length-averaged kt",
    ),
    Parameter(
        "comb",
        "odds",
        ("comb_ss", "comb_st", "comb_tt"),
        "share of terminations by combination (all three)",
        -5.0,
        5.0,
        "reported combination shares of acrylate and other radicals run from mostly disproportionation "
        "to mostly combination with radical type, temperature and method (Nikitin et al. 2010 for BA; Moad & "
        "Solomon): ±5 in log-odds moves polyinv's 0.9/0.5/0.1 to 0.06-0.999",
    ),
    Parameter("Ea_kt", "energy", _KT, "activation energy of termination", -30.0, 30.0, _EA),
    Parameter("Ea_kbb", "energy", ("kbb",), "activation energy of backbiting", -30.0, 30.0, _EA),
    Parameter("Ea_kpt", "energy", ("kpt",), "activation energy of MCR propagation", -30.0, 30.0, _EA),
    Parameter(
        "gel",
        "factor",
        ("gel_A",),
        "gel effect, the free-volume coefficient of kt's fall at high polymer content",
        0.01,
        5.0,
        "free-volume gel-effect coefficients fitted to MMA and styrene bulk and solution data span about a decade "
        "(Marten & Hamielec 1982 and later free-volume models); x0.01 switches it almost off",
    ),
    Parameter(
        "gpc_mass",
        "factor",
        ("gpc_mass",),
        "the lab GPC's molar-mass factor (polystyrene-equivalent masses of another polymer)",
        0.3,
        3.0,
        "polystyrene-equivalent molar masses of PMMA, polyacrylates and other polymers differ from the true ones "
        "by x0.5-2 (Mark-Houwink parameters, Polymer Handbook); lab samples only",
    ),
    Parameter(
        "gpc_spread",
        "value",
        ("gpc_spread",),
        "the lab GPC's band broadening, decades of log10 M (Gaussian)",
        0.0,
        0.4,
        "SEC band broadening and what a scheme's chain-length distribution misses (chain-length-dependent "
        "termination, conversion drift) spread a trace by 0.05-0.3 decade; lab samples only",
    ),
    Parameter(
        "kp",
        "factor",
        ("kp",),
        "SPR propagation (IUPAC benchmark: best known)",
        1 / 3,
        3.0,
        "IUPAC benchmark ±15 % (Asua et al. 2004); x3 either way holds an effective kp of another scheme",
    ),
    Parameter(
        "Ea_kp", "energy", ("kp",), "activation energy of SPR propagation (and transfer)", -30.0, 30.0, _EA
    ),
)
BY_NAME = {p.name: p for p in PARAMETERS}
#: Parameters of mechanisms a system's scheme may lack: backbiting (acrylates) and the gel effect.
_BACKBITING = ("kbb", "kpt", "Ea_kbb", "Ea_kpt")
_MEASUREMENT = ("gpc_mass", "gpc_spread")


def candidates_for(system: str = "ba", protocol: str = "stop") -> tuple[str, ...]:
    """The parameters a calibration of a system considers: those of the mechanisms its scheme has, and for lab
    samples (protocol ``sampled``) the GPC's measurement model (the study's simulated BA files: every kinetic
    parameter but the gel effect, which its scheme does not have)."""
    params = parameters_of(system)
    return tuple(
        p.name
        for p in PARAMETERS
        if not (p.name in _BACKBITING and not params.backbiting)
        and not (p.name == "gel" and params.gel_A == 0.0)
        and not (p.name in _MEASUREMENT and protocol != "sampled")
    )


def default_value(name: str) -> float:
    """The value of a parameter that leaves polyinv's kinetics unchanged (factor 1, shift 0, value 0)."""
    return BY_NAME[name].default


def apply(values: Mapping[str, float], base: KineticParameters = DEFAULT_PARAMETERS) -> KineticParameters:
    """``base`` with the parameters' ``values`` (factor, or kJ/mol for an energy shift) applied."""
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise ValueError(f"unknown kinetic parameter(s) {unknown}; known: {[p.name for p in PARAMETERS]}")
    factor: dict[str, float] = {}
    shift: dict[str, float] = {}
    changes: dict[str, object] = {}
    for name, value in values.items():
        p = BY_NAME[name]
        value = float(value)
        if not math.isfinite(value) or (p.kind == "factor" and value <= 0):
            raise ValueError(
                f"kinetic parameter {name} must be a {'positive ' if p.kind == 'factor' else ''}number, got {value!r}"
            )
        for target in p.targets:
            if p.kind == "value":
                changes[target] = value
            elif p.kind == "odds":
                if value == 0.0:  # exactly polyinv's shares (the round trip through the log-odds is not)
                    continue
                share = float(getattr(base, target))
                changes[target] = 1.0 / (1.0 + math.exp(-(math.log(share / (1.0 - share)) + value)))
            elif p.kind == "factor":
                factor[target] = factor.get(target, 1.0) * value
            else:
                shift[target] = shift.get(target, 0.0) + value
    t_ref = T_REF + 273.15
    for target in set(factor) | set(shift):
        current = getattr(base, target, None)
        if isinstance(current, RateCoefficient):
            d_ea = shift.get(target, 0.0)
            a = current.A * factor.get(target, 1.0) * math.exp(d_ea * 1e3 / (R_GAS * t_ref))
            changes[target] = dataclasses.replace(current, A=a, Ea=current.Ea + d_ea)
        elif target == "f":
            k = factor.get("f", 1.0)
            changes["f_values"] = tuple(v * k for v in base.f_values)
            changes["f_bounds"] = (base.f_bounds[0] * k, base.f_bounds[1] * k)
        else:
            changes[target] = current * factor.get(target, 1.0)
    return base.replace(**changes)


@dataclass
class ForwardModel:
    """Kinetics (``values`` of :data:`PARAMETERS` on the literature values of ``system``), MMD axis and run
    protocol of a file.

    ``source`` says where it comes from ("polyinv defaults (file metadata)", "calibrated on ..."); ``fit``
    holds a calibration's statistics (plain data) for reports. ``protocol`` ``stop``: runs stop at ``t_max`` or
    ``x_stop``; ``sampled``: each row is simulated to its own ``time`` (an input; ``t_max``/``x_stop`` unused).
    """

    values: dict[str, float] = field(default_factory=dict)
    axis: MMDAxis = DEFAULT_AXIS
    t_max: float = DEFAULT_T_MAX
    x_stop: float = DEFAULT_X_STOP
    source: str = "polyinv defaults"
    fit: dict | None = None
    system: str = "ba"
    protocol: str = "stop"

    def __post_init__(self) -> None:
        if self.system not in SYSTEMS:
            raise ValueError(f"unknown system {self.system!r}; choose one of {', '.join(SYSTEMS)}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown run protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")

    @property
    def parameters(self) -> KineticParameters:
        return apply(self.values, parameters_of(self.system))

    @property
    def is_default_kinetics(self) -> bool:
        return all(v == default_value(k) for k, v in self.values.items())

    def simulate(
        self,
        recipes: pd.DataFrame,
        t_max: np.ndarray | float | None = None,
        n_steps: int | None = None,
        x_stop: float | None = None,
        **options,
    ) -> pd.DataFrame:
        """Compuesta frame of ``recipes`` (cBA_0, cAIBN_0, temp) on this model's axis; each run stops at its
        ``t_max`` (default: the protocol's) or at ``x_stop`` conversion (default: the protocol's). Under the
        ``sampled`` protocol each row runs to its own ``time`` column, or to ``t_max`` (per row) where the recipes
        have none (``x_stop`` unused). ``options`` go to :func:`simulate_many` (noise_chains, seed, n_jobs,
        progress)."""

        extra = {"progress": False, **options} | ({} if n_steps is None else {"n_steps": int(n_steps)})
        if self.protocol == "sampled":
            if TIME not in recipes.columns and t_max is None:
                raise ValueError(
                    f"the sampled protocol simulates each row to its {TIME!r} column; it has none"
                )
            times = (
                recipes[TIME].to_numpy(float)
                if TIME in recipes.columns
                else np.broadcast_to(np.asarray(t_max, dtype=float), (len(recipes),)).copy()
            )
            frame = simulate_many(
                recipes[list(RECIPE_COLUMNS)],
                self.parameters,
                t_max=times,
                x_stop=SAMPLED_X_STOP,
                axis=self.axis,
                **extra,
            )
            frame[TIME] = times  # a sample's time, even where the run completed before it
            return frame
        return simulate_many(
            recipes[list(RECIPE_COLUMNS)],
            self.parameters,
            t_max=self.t_max if t_max is None else t_max,
            x_stop=self.x_stop if x_stop is None else x_stop,
            axis=self.axis,
            **extra,
        )

    def describe(self) -> str:
        a = self.axis
        moved = (
            ", ".join(f"{k} {_fmt(k, v)}" for k, v in self.values.items() if v != default_value(k)) or "none"
        )
        protocol = (
            "each sample simulated to its own time"
            if self.protocol == "sampled"
            else f"runs stop at {self.t_max:g} s or {100 * self.x_stop:g} % conversion"
        )
        return (
            f"{self.source}; system {self.system}; parameters moved from the literature values: {moved}; MMD axis "
            f"log10 M {a.log10m_min:.3f}..{a.log10m_max:.3f} ({a.normalisation}), {a.n_points} points; {protocol}"
        )

    # ------------------------------------------------------------------ plain-data form (model files)
    def to_dict(self) -> dict:
        a = self.axis
        return {
            "version": VERSION,
            "values": {k: float(v) for k, v in self.values.items()},
            "axis": {
                "log10m_min": float(a.log10m_min),
                "log10m_max": float(a.log10m_max),
                "n_points": int(a.n_points),
                "normalisation": a.normalisation,
            },
            "t_max": float(self.t_max),
            "x_stop": float(self.x_stop),
            "source": self.source,
            "fit": self.fit,
            "system": self.system,
            "protocol": self.protocol,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ForwardModel:
        if not isinstance(data, Mapping) or data.get("version") != VERSION:
            raise ValueError("the stored forward model has an unknown format")
        model = cls(
            dict(data.get("values") or {}),
            MMDAxis(**data["axis"]),
            float(data["t_max"]),
            float(data["x_stop"]),
            str(data.get("source", "")),
            data.get("fit"),
            str(data.get("system", "ba")),  # written before systems existed: the study's
            str(data.get("protocol", "stop")),
        )
        _ = model.parameters  # validates names and values
        return model


class ForwardChoice(NamedTuple):
    """The forward model of a run's trust checks, or None with the reason the checks are off."""

    model: ForwardModel | None
    how: str


def _fmt(name: str, value: float) -> str:
    kind = BY_NAME[name].kind
    return {
        "factor": f"x{value:.3g}",
        "energy": f"{value:+.3g} kJ/mol",
        "odds": f"{value:+.3g} log-odds",
    }.get(kind, f"{value:.3g}")
