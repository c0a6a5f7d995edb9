"""Lab-like data of MMA or styrene solution polymerization from a simulator that is not polyinv's (issue 34), for
validation only. It imports nothing of ``polyinv`` and shares none of its modelling choices:

- the full chain-length distribution solved directly (radicals under QSSA per chain length, dead chains from
  transfer, disproportionation and combination by convolution, n = 1 .. 60,000), as benchmarks/foreign_sim.py;
- composite-model chain-length-dependent termination (geometric-mean cross termination), not polyinv's
  chain-length-averaged kt;
- a gel effect of the Hui & Hamielec polynomial form in the polymer weight fraction,
  kt = kt0 exp(-2 (A w + B w² + C w³)), not polyinv's free-volume form;
- its own coefficients (approximate literature orders, labelled, a credible other world rather than a better
  one): AIBN kd 1.58e15 exp(-128.9 kJ/mol / RT) 1/s (Polymer Handbook order), f 0.6 (MMA) / 0.7 (styrene)
  guessed; kp MMA 2.5e6 exp(-22.2 kJ/mol / RT), styrene 4.0e7 exp(-32.3 kJ/mol / RT) (near the IUPAC
  benchmarks, deliberately not equal); kt(1,1) MMA 2.84e10 exp(-9 kJ/mol / RT) (5.8e8 at 5 °C, Barth et al.
  2009) with α_s 0.63, i_c 100, α_l 0.16; styrene 2.3e10 exp(-8 kJ/mol / RT) with α_s 0.51, i_c 30, α_l 0.16
  (orders of Johnston-Hall & Monteiro 2008); disproportionation 75 % (MMA) / 15 % (styrene); C_M 1.5e-5 / 7e-5,
  toluene C_S 3e-5 / 1.5e-5 (Polymer Handbook orders); gel A, B, C 0.6, 2.0, 6.0 (MMA) and 0.3, 1.0, 2.5
  (styrene), guessed.

What a laboratory adds (the measurement model): conversion by gravimetry (±0.01, normal); GPC traces on the
instrument's own 30-point axis log10 M 2.0005-6.699, density-normalised, polystyrene-equivalent molar masses
M_app = c M (M / 1e5)^0.03 with c drawn per data set in 0.6-1.8 (``--ps-factor`` fixes it), band broadening
(σ 0.05 decade), noise (1 % of the peak per point) and a baseline offset and tilt (up to 0.5 % of the peak);
Mn and Mw as GPC software reports them, from the broadened, biased distribution, with 3 % noise each.
Reactions: a Latin hypercube over ``[M]0`` 1.5-5.5 mol/L (MMA; styrene 2-6), ``[AIBN]0`` 0.005-0.04 mol/L,
55-85 °C, each sampled 5-8 times between 10 min and 2-6 h.

  python -m benchmarks.lab_sim --system mma --reactions 8 --seed 1 --out benchmarks/data/lab/mma_seed1.csv
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp
from scipy.signal import fftconvolve
from scipy.stats import qmc

R = 8.314462618
N_MAX = 60_000
V_SOLVENT, M_SOLVENT = 92.14 / 867.0, 92.14  # toluene: L/mol, g/mol
AXIS = np.linspace(2.0005, 6.699, 30)  # the instrument's axis
FINE = np.linspace(1.5, 7.5, 1201)  # where the true distribution is rendered before the instrument sees it


@dataclass(frozen=True)
class Monomer:
    name: str
    column: str  # c<monomer>_0
    molar_mass: float  # g/mol
    density: float  # g/L
    kp: tuple[float, float]  # A, Ea kJ/mol
    kt11: tuple[float, float]
    alpha_s: float
    alpha_l: float
    i_c: float
    disp: float
    c_m: float
    c_s: float
    f: float
    gel: tuple[float, float, float]
    box_m0: tuple[float, float]


MONOMERS = {
    "mma": Monomer(
        "MMA",
        "cMMA_0",
        100.12,
        940.0,
        (2.5e6, 22.2),
        (2.84e10, 9.0),
        0.63,
        0.16,
        100.0,
        0.75,
        1.5e-5,
        3e-5,
        0.6,
        (0.6, 2.0, 6.0),
        (1.5, 5.5),
    ),
    "sty": Monomer(
        "styrene",
        "cSty_0",
        104.15,
        906.0,
        (4.0e7, 32.3),
        (2.3e10, 8.0),
        0.51,
        0.16,
        30.0,
        0.15,
        7e-5,
        1.5e-5,
        0.7,
        (0.3, 1.0, 2.5),
        (2.0, 6.0),
    ),
}


def arrhenius(a: float, ea_kj: float, temp_c: float) -> float:
    return a * math.exp(-ea_kj * 1e3 / (R * (temp_c + 273.15)))


class World:
    """Kinetics of one recipe: QSSA radical chain-length distribution and dead-chain formation rates."""

    def __init__(self, mon: Monomer, m0: float, temp: float):
        self.mon, self.m0 = mon, m0
        self.kd = arrhenius(1.58e15, 128.9, temp)
        self.kp = arrhenius(*mon.kp, temp)
        kt11 = arrhenius(*mon.kt11, temp)
        n = np.arange(1, N_MAX + 1, dtype=np.float64)
        ic = mon.i_c
        ktii = np.where(
            n < ic, kt11 * n**-mon.alpha_s, kt11 * ic ** (mon.alpha_l - mon.alpha_s) * n**-mon.alpha_l
        )
        self.n, self.sqrt_kt0 = n, np.sqrt(ktii)
        self.solvent = max(1.0 - m0 * mon.molar_mass / mon.density, 0.0) / V_SOLVENT
        self.mass = m0 * mon.molar_mass + self.solvent * M_SOLVENT  # g/L of the mixture

    def gel(self, m: float) -> float:
        w = (self.m0 - m) * self.mon.molar_mass / self.mass  # polymer weight fraction
        a, b, c = self.mon.gel
        return math.exp(-2.0 * (a * w + b * w * w + c * w**3))

    def radicals(self, m: float, ri: float) -> tuple[np.ndarray, np.ndarray, float]:
        sqrt_kt = self.sqrt_kt0 * math.sqrt(self.gel(m))
        q = math.sqrt(ri / 2.0)
        prop = self.kp * m
        ktr = (self.mon.c_m * m + self.mon.c_s * self.solvent) * self.kp
        ratio = prop / (prop + ktr + 2.0 * sqrt_kt * q)
        ratio[0] = 1.0
        p = np.exp(np.cumsum(np.log(ratio)))
        den1 = prop + ktr + 2.0 * sqrt_kt[0] * q
        r1 = ri / max(den1 - ktr * p.sum(), 1e-300)
        return r1 * p, sqrt_kt, q

    def dead_rate(self, m: float, ri: float) -> np.ndarray:
        r, sqrt_kt, q = self.radicals(m, ri)
        ktr = (self.mon.c_m * m + self.mon.c_s * self.solvent) * self.kp
        sk = sqrt_kt * r
        comb = fftconvolve(sk, sk)[: N_MAX - 1]
        dead = (ktr + 2.0 * self.mon.disp * sqrt_kt * q) * r
        dead[1:] += (1.0 - self.mon.disp) * np.clip(comb, 0.0, None)
        return dead

    def dm(self, m: float, ri: float) -> float:
        r, _, _ = self.radicals(m, ri)
        return -(self.kp + self.mon.c_m * self.kp) * m * r.sum()


def reaction(
    mon: Monomer, m0: float, i0: float, temp: float, times: np.ndarray, nodes: int = 90
) -> list[dict]:
    """True conversion and dead-chain distribution of one reaction at each sample time."""
    w = World(mon, m0, temp)
    f = MONOMERS_F[mon.name]
    ri = lambda t: 2.0 * f * w.kd * i0 * math.exp(-w.kd * t)  # noqa: E731
    sol = solve_ivp(
        lambda t, y: [w.dm(max(y[0], 1e-12), ri(t))],
        (0.0, float(times[-1])),
        [m0],
        rtol=1e-7,
        atol=1e-10,
        dense_output=True,
    )
    grid = np.unique(np.concatenate([np.linspace(0.0, times[-1], nodes), times]))
    dead, previous, out = np.zeros(N_MAX), None, []
    for k, t in enumerate(grid):
        m = float(sol.sol(t)[0])
        rate = w.dead_rate(m, ri(t))
        if previous is not None:
            dead = dead + 0.5 * (rate + previous) * (grid[k] - grid[k - 1])
        previous = rate
        if np.any(np.isclose(t, times)):
            out.append({"x": 1.0 - m / m0, "dead": dead.copy(), "n": w.n})
    return out


MONOMERS_F = {m.name: m.f for m in MONOMERS.values()}


def instrument(sample: dict, mon: Monomer, ps_factor: float, rng: np.random.Generator) -> dict:
    """What the lab reports for one sample: gravimetric conversion, a GPC trace on its own axis, Mn and Mw."""
    n, dead = sample["n"], sample["dead"]
    logm = np.log10(n * mon.molar_mass)
    app = logm + math.log10(ps_factor) + 0.03 * (logm - 5.0)  # polystyrene-equivalent
    # mass distribution per unit log10 M on a fine grid, then band broadening (Gaussian in log M)
    w_n = n * n * dead  # ∝ w(log10 M) at the chain lengths (dW/dlog M ∝ n² D_n)
    fine = np.interp(FINE, app, w_n, left=0.0, right=0.0)
    step = FINE[1] - FINE[0]
    kernel = np.exp(-0.5 * (np.arange(-60, 61) * step / 0.05) ** 2)
    fine = np.convolve(fine, kernel / kernel.sum(), mode="same")
    fine = fine / (fine.sum() * step)
    m_app = 10.0**FINE
    mn = 1.0 / ((fine / m_app).sum() * step) * (1.0 + 0.03 * rng.standard_normal())
    mw = (fine * m_app).sum() * step * (1.0 + 0.03 * rng.standard_normal())
    trace = np.interp(AXIS, FINE, fine)
    peak = trace.max()
    baseline = peak * (rng.uniform(-0.005, 0.005) + rng.uniform(-0.005, 0.005) * (AXIS - AXIS.mean()) / 2.35)
    trace = trace + baseline + 0.01 * peak * rng.standard_normal(AXIS.size)
    trace = trace / (trace.sum() * (AXIS[1] - AXIS[0]))
    x = float(np.clip(sample["x"] + 0.01 * rng.standard_normal(), 0.0, 1.0))
    return {"conversion": x, "Mn": mn, "Mw": max(mw, mn), **{f"MMD{i + 1}": v for i, v in enumerate(trace)}}


def lab_set(system: str, reactions: int = 8, seed: int = 0, ps_factor: float | None = None) -> pd.DataFrame:
    mon = MONOMERS[system]
    rng = np.random.default_rng(seed)
    c = float(rng.uniform(0.6, 1.8)) if ps_factor is None else ps_factor
    lo = np.array([mon.box_m0[0], math.log(0.005), 55.0])
    hi = np.array([mon.box_m0[1], math.log(0.04), 85.0])
    design = lo + qmc.LatinHypercube(d=3, seed=seed).random(reactions) * (hi - lo)
    rows = []
    for j, (m0, ln_i0, temp) in enumerate(design):
        k = int(rng.integers(5, 9))
        t_end = float(rng.uniform(2.0, 6.0)) * 3600.0
        times = np.round(np.geomspace(600.0, t_end, k), -1)
        for t, sample in zip(times, reaction(mon, m0, math.exp(ln_i0), temp, times), strict=True):
            rows.append(
                {
                    mon.column: m0,
                    "cAIBN_0": math.exp(ln_i0),
                    "temp": temp,
                    "time": t,
                    **instrument(sample, mon, c, rng),
                    "reaction": f"R{j + 1}",
                }
            )
    frame = pd.DataFrame(rows)
    frame.attrs["ps_factor"] = c
    return frame


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lab_sim", description=__doc__.splitlines()[0])
    p.add_argument("--system", choices=tuple(MONOMERS), required=True)
    p.add_argument("--reactions", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--ps-factor", type=float, default=None, help="polystyrene-equivalent mass factor (default: drawn)"
    )
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    frame = lab_set(args.system, args.reactions, args.seed, args.ps_factor)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print(
        f"wrote {out}: {len(frame)} samples of {frame['reaction'].nunique()} reactions, ps factor {frame.attrs['ps_factor']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
