"""A second simulator of BA/AIBN solution polymerization, for validation only (issue 31). It imports nothing of
``polyinv`` and shares none of its modelling choices:

- one radical population with chain-length-dependent termination (composite model, geometric-mean cross
  termination) instead of polyinv's chain-length-averaged SPR/MCR scheme;
- backbiting only through an effective propagation coefficient, kp / (1 + kbb / (kpt [M])) (the long-chain
  quasi-steady-state of mid-chain radicals), no MCR population and no MCR transfer;
- the full chain-length distribution solved directly: radicals under QSSA per chain length (recursion), dead
  chains accumulated from transfer, disproportionation and combination (a convolution), n = 1 .. 80,000;
- its own coefficients (AIBN decomposition, constant efficiency, transfer to monomer and a solvent whose
  transfer constant is a setting: C_S 6e-3 is ×30 polyinv's toluene, 2e-6 is ×0.01), disproportionation 30 %;
- its MMD axis log10 M 2.0-7.0, point values w(log10 M) ∝ n² D_n normalised to unit sum (polyinv: cell
  averages, density); optional chain sampling (``noise_chains``) as a KMC-like variant.

Coefficients (approximate literature values, labelled; the point is a credible other world, not a better one):
kd of AIBN 1.58e15 exp(-128.9 kJ/mol / RT) 1/s (Polymer Handbook order, 3.8e-5 1/s at 70 °C); f 0.55
(guessed inside the usual 0.5-0.7); kp 2.21e7 exp(-17.9 kJ/mol / RT) (IUPAC benchmark, Asua et al. 2004);
kbb 7.4e7 exp(-32.7 kJ/mol / RT) 1/s and kpt 1.52e6 exp(-28.9 kJ/mol / RT) L/(mol s) (Nikitin, Hutchinson et
al. 2007-2010 orders); composite-model termination with α_s 0.85, i_c 30, α_l 0.16 (Barner-Kowollik, Buback et al. orders for
acrylates), IUPAC "2 kt" convention, kt(1,1) 1.35e9 exp(-8.4 kJ/mol / RT) (7e7 at 70 °C: chosen here so that
the study's grid spans conversions 0.2-0.9 as the study's does, below the ~1e9 reported; a guessed world);
C_M 3e-5 (guessed); C_S 6e-4 by default (×3 polyinv's toluene value; --cs sets other solvents).

  python -m benchmarks.foreign_sim --design grid --out benchmarks/data/foreign/grid.csv [--cs 6e-4] [--noise-chains K]
  python -m benchmarks.foreign_sim --design lhs --n 200 --seed 1 --out benchmarks/data/foreign/lhs200.csv
  python -m benchmarks.foreign_sim --design grid --noise-chains 20000 --out benchmarks/data/foreign/grid_noisy20000.csv
  # auto against the single configs (issue 33: results/independent/<file>): grid.csv and this 432-row LHS
  python -m benchmarks.foreign_sim --design lhs --n 432 --seed 21 --out benchmarks/data/foreign/lhs432.csv
  # the trust checks' groups (python -m benchmarks trust-foreign --world second): in range, then one variable beyond
  python -m benchmarks.foreign_sim --design lhs --n 60 --seed 14 --out benchmarks/data/foreign/in_range.csv
  python -m benchmarks.foreign_sim --design lhs --n 60 --seed 11 --box 0.5 3 0.0025 0.02 90 100 --out benchmarks/data/foreign/out_temp.csv
  python -m benchmarks.foreign_sim --design lhs --n 60 --seed 12 --box 4 5 0.0025 0.02 60 80 --out benchmarks/data/foreign/out_cba.csv
  python -m benchmarks.foreign_sim --design lhs --n 60 --seed 13 --box 0.5 3 0.04 0.06 60 80 --out benchmarks/data/foreign/out_caibn.csv
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp
from scipy.signal import fftconvolve
from scipy.stats import qmc

R = 8.314462618
M_MONOMER = 128.17
V_MONOMER, V_SOLVENT = 128.17 / 894.0, 92.14 / 867.0  # L/mol: BA and toluene-like solvent
N_MAX = 80_000
AXIS = np.linspace(2.0, 7.0, 100)


def arrhenius(a: float, ea_kj: float, temp_c: float) -> float:
    return a * math.exp(-ea_kj * 1e3 / (R * (temp_c + 273.15)))


class World:
    """Kinetics of one recipe's temperature; ``radicals`` gives the QSSA chain-length distribution."""

    def __init__(
        self,
        temp: float,
        c_s: float = 6e-4,
        c_m: float = 3e-5,
        f: float = 0.55,
        disp: float = 0.3,
        kt_factor: float = 1.0,
    ):
        self.kd = arrhenius(1.58e15, 128.9, temp)
        self.f, self.disp, self.c_s, self.c_m = f, disp, c_s, c_m
        self.kp = arrhenius(2.21e7, 17.9, temp)
        self.kbb = arrhenius(7.4e7, 32.7, temp)
        self.kpt = arrhenius(1.52e6, 28.9, temp)
        kt11 = kt_factor * arrhenius(1.35e9, 8.4, temp)
        n = np.arange(1, N_MAX + 1, dtype=np.float64)
        ic, a_s, a_l = 30.0, 0.85, 0.16
        ktii = np.where(n < ic, kt11 * n**-a_s, kt11 * ic ** (a_l - a_s) * n**-a_l)
        self.n, self.sqrt_kt = n, np.sqrt(ktii)

    def kp_eff(self, m: float) -> float:
        return self.kp / (1.0 + self.kbb / (self.kpt * max(m, 1e-9)))

    def radicals(self, m: float, s: float, ri: float) -> np.ndarray:
        """R_n (mol/L) under QSSA: overall 2 Q² = R_i with Q = Σ sqrt(kt_nn) R_n (geometric-mean kt(i,j))."""
        q = math.sqrt(ri / 2.0)
        prop = self.kp_eff(m) * m
        ktr = (self.c_m * m + self.c_s * s) * self.kp_eff(m)  # only chain-end radicals transfer: C kp_eff
        ratio = prop / (prop + ktr + 2.0 * self.sqrt_kt * q)
        ratio[0] = 1.0
        p = np.exp(np.cumsum(np.log(ratio)))
        den1 = prop + ktr + 2.0 * self.sqrt_kt[0] * q
        r1 = ri / max(den1 - ktr * p.sum(), 1e-300)
        return r1 * p

    def rates(self, m: float, s: float, ri: float) -> tuple[float, np.ndarray]:
        """(dM/dt, dD_n/dt)."""
        r = self.radicals(m, s, ri)
        q = math.sqrt(ri / 2.0)
        ktr = (self.c_m * m + self.c_s * s) * self.kp_eff(m)
        sk = self.sqrt_kt * r
        comb = fftconvolve(sk, sk)[: N_MAX - 1]  # chains of length n = i + j, n >= 2
        dead = (ktr + 2.0 * self.disp * self.sqrt_kt * q) * r
        dead[1:] += (1.0 - self.disp) * np.clip(comb, 0.0, None)
        dm = -(self.kp_eff(m) + self.c_m * self.kp) * m * r.sum()
        return dm, dead


def run(
    c_m0: float,
    c_i0: float,
    temp: float,
    t_max: float = 3600.0,
    x_stop: float = 0.9,
    steps: int = 40,
    noise_chains: int | None = None,
    rng: np.random.Generator | None = None,
    **world,
) -> dict:
    w = World(temp, **world)
    s = (1.0 - c_m0 * V_MONOMER) / V_SOLVENT

    def ri(t):
        return 2.0 * w.f * w.kd * c_i0 * math.exp(-w.kd * t)

    def rhs(t, y):
        m = max(y[0], 1e-12)
        return [-(w.kp_eff(m) + w.c_m * w.kp) * m * w.radicals(m, s, ri(t)).sum()]

    def stop(t, y):
        return 1.0 - y[0] / c_m0 - x_stop

    stop.terminal, stop.direction = True, 1
    sol = solve_ivp(rhs, (0.0, t_max), [c_m0], rtol=1e-7, atol=1e-10, events=stop, dense_output=True)
    t_end = float(sol.t_events[0][0]) if len(sol.t_events[0]) else t_max
    times = np.linspace(0.0, t_end, steps + 1)
    dead = np.zeros(N_MAX)
    previous = None
    for k, t in enumerate(times):
        m = float(sol.sol(t)[0])
        _, rate = w.rates(m, s, ri(t))
        if previous is not None:
            dead += 0.5 * (rate + previous) * (times[k] - times[k - 1])
        previous = rate
    m_end = float(sol.sol(t_end)[0])
    n = w.n
    if noise_chains:
        counts = (
            (rng or np.random.default_rng(0)).multinomial(noise_chains, dead / dead.sum()).astype(np.float64)
        )
        mn = M_MONOMER * (n * counts).sum() / counts.sum()
        mw = M_MONOMER * (n * n * counts).sum() / (n * counts).sum()
        # mass of the sampled chains in cells around the axis points
        edges = np.concatenate([[AXIS[0] - 0.025], 0.5 * (AXIS[1:] + AXIS[:-1]), [AXIS[-1] + 0.025]])
        mmd, _ = np.histogram(np.log10(n * M_MONOMER), bins=edges, weights=n * counts)
    else:
        mn = M_MONOMER * (n * dead).sum() / dead.sum()
        mw = M_MONOMER * (n * n * dead).sum() / (n * dead).sum()
        chain = 10.0**AXIS / M_MONOMER
        mmd = np.interp(chain, n, n * n * dead, left=0.0, right=0.0)
    mmd = mmd / mmd.sum()
    return {
        "cBA_0": c_m0,
        "cAIBN_0": c_i0,
        "temp": temp,
        "time": t_end,
        "cBA_time": m_end,
        "Mn": mn,
        "Mw": mw,
        **{f"MMD{i + 1}": v for i, v in enumerate(mmd)},
    }


def design(kind: str, n: int = 0, seed: int = 0, box: dict | None = None) -> pd.DataFrame:
    """grid: the study's 6x8x9 grid; lhs: a scrambled Latin hypercube over ``box`` (default the study's box)."""
    if kind == "grid":
        rows = [
            (0.5 * i, 0.0025 * j, 60.0 + 2.5 * k) for i in range(1, 7) for j in range(1, 9) for k in range(9)
        ]
        return pd.DataFrame(rows, columns=["cBA_0", "cAIBN_0", "temp"])
    box = box or {"cBA_0": (0.5, 3.0), "cAIBN_0": (0.0025, 0.02), "temp": (60.0, 80.0)}
    unit = qmc.LatinHypercube(d=3, seed=seed).random(n)
    lo, hi = np.array([v[0] for v in box.values()]), np.array([v[1] for v in box.values()])
    return pd.DataFrame(qmc.scale(unit, lo, hi), columns=list(box))


def simulate(recipes: pd.DataFrame, jobs: int = 1, seed: int = 0, **kw) -> pd.DataFrame:
    from joblib import Parallel, delayed

    seeds = np.random.SeedSequence(seed).spawn(len(recipes))
    rows = Parallel(n_jobs=jobs)(
        delayed(run)(r.cBA_0, r.cAIBN_0, r.temp, rng=np.random.default_rng(sd), **kw)
        for r, sd in zip(recipes.itertuples(), seeds, strict=True)
    )
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.foreign_sim", description=__doc__.splitlines()[0])
    p.add_argument("--design", choices=("grid", "lhs"), required=True)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cs", type=float, default=6e-4, help="transfer constant to solvent (relative to kp)")
    p.add_argument("--kt-factor", type=float, default=1.0)
    p.add_argument("--noise-chains", type=int, default=None)
    p.add_argument(
        "--box",
        nargs=6,
        type=float,
        default=None,
        metavar=("CBA_LO", "CBA_HI", "CI_LO", "CI_HI", "T_LO", "T_HI"),
    )
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    box = (
        None
        if args.box is None
        else {"cBA_0": tuple(args.box[0:2]), "cAIBN_0": tuple(args.box[2:4]), "temp": tuple(args.box[4:6])}
    )
    recipes = design(args.design, args.n, args.seed, box)
    frame = simulate(
        recipes, args.jobs, args.seed, c_s=args.cs, kt_factor=args.kt_factor, noise_chains=args.noise_chains
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print(f"wrote {out}: {len(frame)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
