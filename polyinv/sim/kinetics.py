"""Deterministic forward model: QSSA radicals, ODE for [M], Hamielec's cumulative chain-length distribution.

Method (docs/simulator.md), vectorised over recipes:

* [I](t) = [I]0 exp(-kd t) (analytic); R_i = 2 f kd [I].
* SPR (S) and MCR (T) concentrations from the quasi-steady-state balances
  ``kbb S = T (kpt M + k_tr,S^MCR [S] + 2 kt_st S + 2 kt_tt T)`` and ``R_i = 2 kt_ss S^2 + 4 kt_st S T + 2 kt_tt T^2``,
  solved at every evaluation by a safeguarded Newton iteration on S (T is explicit in S).
* ``d ln[M]/dt = -(kp S + kpt T)``, classical RK4 on a uniform time grid; the run stops at ``t_max`` or
  when conversion reaches ``x_stop``; the crossing time is found exactly (Newton on a partial RK4 step).
* Every radical, SPR or MCR, belongs to a growing chain; backbiting (no β-scission) does not cut chains,
  it only slows growth. Switching SPR <-> MCR (~1e2-1e3 1/s) is much faster than a chain's life, so all
  radicals share one chain-length distribution, exponential with parameter
  ``a = (radical loss by termination + transfer) / (propagation rate)``. Hamielec's instantaneous dead
  polymer: chains from disproportionation and transfer ~ Exp(a) (tau part), chains from combination
  ~ Gamma(2, a) (beta part), so the instantaneous Mw/Mn is 2 and 1.5 in the two pure limits.
* The cumulative distribution and its moments are time integrals of the instantaneous ones weighted by
  the rates of chain formation (trapezoid rule on the RK4 nodes plus the exact stop node). Mn and Mw come
  from these moments, never from the MMD points (:mod:`polyinv.sim.distribution`). M = chain length x the monomer's molar mass
  (end groups neglected).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyinv.schema import M_MONOMER, T_MAX, X_STOP
from polyinv.sim.parameters import KineticParameters

#: Default integration settings (convergence against a 10x finer grid is checked in tests/sim).
DEFAULT_T_MAX = T_MAX
DEFAULT_X_STOP = X_STOP
DEFAULT_N_STEPS = 240


@dataclass
class RecipeRates:
    """Rate coefficients and initial state evaluated for a batch of recipes (arrays of shape (n,))."""

    M0: np.ndarray
    I0: np.ndarray
    kd: np.ndarray
    f: np.ndarray
    kp: np.ndarray
    kbb: np.ndarray
    kpt: np.ndarray
    kss: np.ndarray
    kst: np.ndarray
    ktt: np.ndarray
    ktr_M: np.ndarray
    ktr_S: np.ndarray
    ktr_S_mcr: np.ndarray
    solvent: np.ndarray
    comb_ss: float
    comb_st: float
    comb_tt: float
    initiator_consumption: bool
    alpha_t: float = 0.0  # chain-length dependence of termination, kt ∝ (nu / nu_ref)^-alpha_t (0: none)
    nu_ref: float = 1.0
    monomer_molar_mass: float = M_MONOMER
    # gel effect (KineticParameters.gel_A; 0: none): volumes per mol of monomer, polymer unit and solvent
    # (L/mol) and their fractional free volumes at the recipe's temperature
    gel_A: float = 0.0
    v_monomer: float = 0.0
    v_polymer: float = 0.0
    v_solvent: float = 0.0
    fv_monomer: np.ndarray | float = 0.0
    fv_polymer: np.ndarray | float = 0.0
    fv_solvent: np.ndarray | float = 0.0

    @classmethod
    def build(cls, params: KineticParameters, cBA_0, cAIBN_0, temp) -> RecipeRates:
        """Evaluate every coefficient at each recipe's temperature."""
        temp = np.asarray(temp, dtype=float)
        kp = params.kp.at(temp)
        kelvin = temp + 273.15

        def free_volume(alpha, tg):  # Bueche: 0.025 + alpha (T - Tg), kept above zero below Tg
            return np.maximum(0.025 + alpha * (kelvin - tg), 1e-3)

        return cls(
            M0=np.asarray(cBA_0, dtype=float),
            I0=np.asarray(cAIBN_0, dtype=float),
            kd=params.kd.at(temp),
            f=params.efficiency(temp),
            kp=kp,
            kbb=params.kbb.at(temp),
            kpt=params.kpt.at(temp),
            kss=params.kt_ss.at(temp),
            kst=params.kt_st.at(temp),
            ktt=params.kt_tt.at(temp),
            ktr_M=params.C_M * kp,
            ktr_S=params.C_S * kp,
            ktr_S_mcr=params.C_S_mcr * params.kpt.at(temp),
            solvent=np.maximum(params.solvent_concentration(cBA_0), 0.0),
            comb_ss=params.comb_ss,
            comb_st=params.comb_st,
            comb_tt=params.comb_tt,
            initiator_consumption=params.initiator_consumption,
            alpha_t=float(params.alpha_t),
            nu_ref=float(params.nu_ref),
            monomer_molar_mass=float(params.monomer_molar_mass),
            gel_A=float(params.gel_A),
            v_monomer=params.molar_volume_monomer,
            v_polymer=params.molar_volume_polymer,
            v_solvent=params.molar_volume_solvent,
            fv_monomer=free_volume(params.alpha_monomer, params.Tg_monomer),
            fv_polymer=free_volume(params.alpha_polymer, params.Tg_polymer),
            fv_solvent=free_volume(params.alpha_solvent, params.Tg_solvent),
        )

    def initiator(self, t) -> np.ndarray:
        """[I](t), mol/L."""
        if not self.initiator_consumption:
            return self.I0 * np.ones_like(np.asarray(t, dtype=float))
        return self.I0 * np.exp(-self.kd * t)


def _free_volume(r: RecipeRates, M: np.ndarray) -> np.ndarray:
    """Fractional free volume of the mixture at monomer concentration M (volume fractions; shrinkage neglected)."""
    vm, vp, vs = M * r.v_monomer, (r.M0 - M) * r.v_polymer, r.solvent * r.v_solvent
    return (vm * r.fv_monomer + vp * r.fv_polymer + vs * r.fv_solvent) / (vm + vp + vs)


def gel_scale(r: RecipeRates, M: np.ndarray) -> np.ndarray:
    """kt / kt0 of the gel effect, ``exp(-gel_A (1/Vf - 1/Vf0))`` (1 where gel_A is 0)."""
    if r.gel_A == 0.0:
        return np.ones(np.shape(M))
    return np.exp(-r.gel_A * (1.0 / _free_volume(r, M) - 1.0 / _free_volume(r, r.M0)))


NO_RADICAL_SOURCE = 1e-200  # mol/(L s); the design's initiation rates are about 1e-8 to 1e-6


def _mcr_of_spr(r: RecipeRates, S: np.ndarray, M: np.ndarray, kst=None, ktt=None) -> np.ndarray:
    """T solving the MCR balance ``2 ktt T^2 + (kpt M + 2 kst S) T - kbb S = 0`` (stable root)."""
    kst = r.kst if kst is None else kst
    ktt = r.ktt if ktt is None else ktt
    b = r.kpt * M + r.ktr_S_mcr * r.solvent + 2.0 * kst * S
    return 2.0 * r.kbb * S / (b + np.sqrt(b * b + 8.0 * ktt * r.kbb * S))


def solve_qssa(
    r: RecipeRates,
    initiator: np.ndarray,
    M: np.ndarray,
    S_guess: np.ndarray | None = None,
    tol: float = 1e-12,
    max_iter: int = 60,
    G: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Quasi-steady-state SPR and MCR concentrations (mol/L) for initiator and monomer concentrations, the three
    termination coefficients multiplied by ``G`` (None: 1)."""
    kss, kst, ktt = (r.kss, r.kst, r.ktt) if G is None else (r.kss * G, r.kst * G, r.ktt * G)
    Ri = 2.0 * r.f * r.kd * initiator
    # a source this small starts no chain in any reaction time, and at such magnitudes (denormal floats) the
    # Newton iteration cannot reach its relative tolerance: no source at all (S = 0)
    Ri = np.where(Ri < NO_RADICAL_SOURCE, 0.0, Ri)
    if not np.any(r.kbb):  # no backbiting: one radical type, R_i = 2 kt S^2 in closed form
        S = np.sqrt(Ri / (2.0 * kss))
        return S, np.zeros_like(S)
    # Bracket: T = 0 gives the upper bound of S; the MCR balance without MCR termination the lower one.
    hi = np.sqrt(Ri / (2.0 * kss))
    rho0 = r.kbb / (r.kpt * M + r.ktr_S_mcr * r.solvent)
    lo = np.sqrt(Ri / (2.0 * kss + 4.0 * kst * rho0 + 2.0 * ktt * rho0 * rho0))
    S = lo.copy() if S_guess is None else np.clip(S_guess, lo, hi)
    # the loop's constant factors, once: each product below is evaluated in the same order as written out in
    # full (e.g. 2.0 * kss * S * S), so the numbers are those of the plain expressions, bit for bit
    base = r.kpt * M + r.ktr_S_mcr * r.solvent
    kss2, kss4, kst2, kst4, ktt2, ktt4 = 2.0 * kss, 4.0 * kss, 2.0 * kst, 4.0 * kst, 2.0 * ktt, 4.0 * ktt
    kbb2, root8 = 2.0 * r.kbb, 8.0 * ktt * r.kbb
    for _ in range(max_iter):
        b = base + kst2 * S
        T = kbb2 * S / (b + np.sqrt(b * b + root8 * S))  # _mcr_of_spr
        g = kss2 * S * S + kst4 * S * T + ktt2 * T * T - Ri
        dT = (r.kbb - kst2 * T) / (ktt4 * T + b)
        dg = kss4 * S + kst4 * T + kst4 * S * dT + ktt4 * T * dT
        lo = np.where(g < 0, S, lo)
        hi = np.where(g > 0, S, hi)
        # no radical source left (the initiator spent, e.g. far above the design's temperatures): the bracket
        # is [0, 0] and S = 0 is the answer; the Newton step 0/0 is not taken
        step = np.divide(g, dg, out=np.zeros_like(g), where=dg > 0)
        S_new = S - step
        # a NaN in the inputs (a run past the integrator's reach, e.g. an absurd recipe) has no root to find:
        # it stays NaN so the outcome shows it, instead of failing the whole batch
        lost = ~(np.isfinite(S) & np.isfinite(g))
        converged = lost | (np.abs(step) <= tol * S) | (hi <= 0.0)
        outside = ~((S_new >= lo) & (S_new <= hi)) & ~converged
        S = np.where(outside, 0.5 * (lo + hi), S_new)
        if converged.all():
            break
    else:  # pragma: no cover - the bracketed Newton iteration always converges
        raise RuntimeError("QSSA radical balance did not converge")
    S = np.where(lost, np.nan, S)
    return S, _mcr_of_spr(r, S, M, kst, ktt)


def _termination_scale(r: RecipeRates, S, T, M, G) -> np.ndarray:
    """``(nu / nu_ref)^-alpha_t`` for the radicals (S, T) when termination runs at ``G`` times the reference kt:
    nu = (1 + a) / a is the mean length of the growing chains (a: stops per propagation step, :func:`chain_rates`)."""
    a = chain_rates(r, M, S, T, G).a
    return np.exp(-r.alpha_t * np.log((1.0 + a) / (a * r.nu_ref)))


def radical_state(
    r: RecipeRates,
    initiator: np.ndarray,
    M: np.ndarray,
    S_guess: np.ndarray | None = None,
    G_guess: np.ndarray | None = None,
    tol: float = 1e-7,
    max_iter: int = 40,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QSSA radicals (S, T) and the termination scale G with chain-length-dependent termination.

    kt = kt_ref (nu / nu_ref)^-alpha_t, nu the mean length of the growing chains (a power law on the average
    chain length, the lumped form of the composite model, Smith, Russell & Heuts 2003; Johnston-Hall &
    Monteiro 2008): G solves ``G = (nu(S(G), T(G)) / nu_ref)^-alpha_t``. In ln G the map is a contraction
    (slope about alpha_t / 2), solved by the secant method, a few steps from the previous node's G.
    With alpha_t = 0, G = 1 and this is :func:`solve_qssa`. The gel effect (:func:`gel_scale`) multiplies G.
    """
    n = np.shape(M)[0]
    gel = gel_scale(r, M) if r.gel_A != 0.0 else None  # the gel effect's factor on kt (None: no gel effect)
    if r.alpha_t == 0.0:
        S, T = solve_qssa(r, initiator, M, S_guess, G=gel)
        return S, T, np.ones(n) if gel is None else gel
    if G_guess is not None and gel is not None:
        G_guess = G_guess / gel
    x0 = (
        np.zeros(n)
        if G_guess is None
        else np.log(np.where(np.isfinite(G_guess) & (G_guess > 0), G_guess, 1.0))
    )

    def total(G):
        return G if gel is None else G * gel

    def residual(x, guess):
        G = total(np.exp(x))
        S_, T_ = solve_qssa(r, initiator, M, guess, G=G)
        F = np.log(_termination_scale(r, S_, T_, M, G)) - x
        return np.where(np.isfinite(F), F, 0.0), S_, T_

    F0, S, T = residual(x0, S_guess)
    if np.all(np.abs(F0) <= tol):
        return S, T, total(np.exp(x0))
    x1 = x0 + F0 / (1.0 - 0.5 * r.alpha_t)  # Newton step with the map's typical slope alpha_t / 2
    for _ in range(max_iter):
        F1, S, T = residual(x1, S)
        if np.all(np.abs(F1) <= tol):
            break
        denom = F1 - F0
        step = np.divide(
            F1 * (x1 - x0), denom, out=F1 / (1.0 - 0.5 * r.alpha_t), where=np.abs(denom) > 1e-300
        )
        x0, F0 = x1, F1
        x1 = x1 - np.where(np.abs(F1) <= tol, 0.0, step)
    else:  # pragma: no cover - a contraction with slope < 1/2 converges in a few secant steps
        raise RuntimeError("chain-length-dependent termination did not converge")
    return S, T, total(np.exp(x1))


@dataclass
class Trajectory:
    """Node values of a batch run: nodes 0..N of the time grid plus one stop node (index N+1)."""

    t: np.ndarray  # (n, N+2)
    M: np.ndarray
    S: np.ndarray
    T: np.ndarray
    G: np.ndarray  # termination scale (1 unless termination depends on chain length)
    weights: np.ndarray  # trapezoid weights up to the stop time, (n, N+2)
    stop_time: np.ndarray  # (n,)
    reached: np.ndarray  # (n,) bool: stopped by the conversion limit


def integrate(
    r: RecipeRates,
    t_max: float | np.ndarray = DEFAULT_T_MAX,
    x_stop: float = DEFAULT_X_STOP,
    n_steps: int = DEFAULT_N_STEPS,
) -> Trajectory:
    """RK4 for ln[M] with QSSA radicals; stop at t_max or at conversion x_stop.

    ``t_max`` is one time for every recipe or one per recipe (shape (n,)); each recipe integrates on its
    own uniform grid of ``n_steps`` steps up to its ``t_max``, so a batch gives the same numbers as
    running each recipe alone.
    """
    n = r.M0.shape[0]
    t_end = np.broadcast_to(np.asarray(t_max, dtype=float), (n,)).copy()
    dt = t_end / n_steps
    times = np.arange(n_steps + 1)[None, :] * dt[:, None]  # (n, N+1)
    lnM = np.empty((n, n_steps + 1))
    S_nodes = np.empty((n, n_steps + 1))
    T_nodes = np.empty((n, n_steps + 1))
    G_nodes = np.empty((n, n_steps + 1))
    y = np.log(r.M0)
    # x_stop 1: no conversion stops the run (the sampled protocol: each run lasts its own time)
    target = np.log(r.M0 * (1.0 - x_stop)) if x_stop < 1.0 else np.full(n, -np.inf)
    S_guess = G_guess = None

    def rate(t, y_, guess, g_guess):
        M_ = np.exp(y_)
        S_, T_, G_ = radical_state(r, r.initiator(t), M_, guess, g_guess)
        return -monomer_consumption(r, M_, S_, T_, G_), S_, T_, G_

    for k in range(n_steps + 1):
        f1, S_k, T_k, G_k = rate(times[:, k], y, S_guess, G_guess)
        lnM[:, k], S_nodes[:, k], T_nodes[:, k], G_nodes[:, k] = y, S_k, T_k, G_k
        if k == n_steps:
            break
        f2, s2, _, g2 = rate(times[:, k] + dt / 2, y + dt / 2 * f1, S_k, G_k)
        f3, _, _, _ = rate(times[:, k] + dt / 2, y + dt / 2 * f2, s2, g2)
        f4, S_guess, _, G_guess = rate(times[:, k] + dt, y + dt * f3, s2, g2)
        # Runs already past the conversion limit are frozen (their later nodes get zero weight).
        y = np.where(y > target, y + dt / 6.0 * (f1 + 2.0 * f2 + 2.0 * f3 + f4), y)

    below = lnM <= target[:, None]
    reached = below.any(axis=1)
    first = np.where(reached, below.argmax(axis=1), n_steps + 1)  # first node past the limit
    k0 = np.where(reached, first - 1, n_steps)  # last full node before the stop

    # Stop node: exact crossing by Newton on a single RK4 step of length h from node k0.
    stop_time = t_end.copy()
    idx = np.nonzero(reached)[0]
    M_stop = np.exp(lnM[np.arange(n), k0])
    S_stop = S_nodes[np.arange(n), k0].copy()
    T_stop = T_nodes[np.arange(n), k0].copy()
    G_stop = G_nodes[np.arange(n), k0].copy()
    if idx.size:
        sub = _subset(r, idx)
        kk = k0[idx]
        y0 = lnM[idx, kk]
        y1 = lnM[idx, kk + 1]
        t0 = times[idx, kk]
        h = dt[idx] * (y0 - target[idx]) / (y0 - y1)  # linear first guess
        for _ in range(8):
            y_h, S_h, T_h, G_h = _rk4_step(sub, t0, y0, h, S_nodes[idx, kk], G_nodes[idx, kk])
            slope = -monomer_consumption(sub, np.exp(y_h), S_h, T_h, G_h)
            h = np.clip(h - (y_h - target[idx]) / slope, 0.0, dt[idx])
        y_h, S_h, T_h, G_h = _rk4_step(sub, t0, y0, h, S_nodes[idx, kk], G_nodes[idx, kk])
        stop_time[idx] = t0 + h
        M_stop[idx], S_stop[idx], T_stop[idx], G_stop[idx] = np.exp(y_h), S_h, T_h, G_h

    weights = np.zeros((n, n_steps + 2))
    node = np.arange(n_steps + 1)[None, :]
    weights[:, : n_steps + 1] = np.where(node <= k0[:, None], dt[:, None], 0.0)
    weights[:, 0] = dt / 2
    rows = np.arange(n)
    weights[rows, k0] -= dt / 2
    h_last = stop_time - times[rows, k0]
    weights[rows, k0] += h_last / 2
    weights[:, -1] = h_last / 2

    t_all = np.concatenate([times, stop_time[:, None]], axis=1)
    M_all = np.concatenate([np.exp(lnM), M_stop[:, None]], axis=1)
    S_all = np.concatenate([S_nodes, S_stop[:, None]], axis=1)
    T_all = np.concatenate([T_nodes, T_stop[:, None]], axis=1)
    G_all = np.concatenate([G_nodes, G_stop[:, None]], axis=1)
    return Trajectory(t_all, M_all, S_all, T_all, G_all, weights, stop_time, reached)


def _subset(r: RecipeRates, idx: np.ndarray) -> RecipeRates:
    kw = {k: (v[idx] if isinstance(v, np.ndarray) else v) for k, v in vars(r).items()}
    return RecipeRates(**kw)


def _rk4_step(r: RecipeRates, t0, y0, h, S_guess, G_guess):
    """One RK4 step of length h (array) for ln[M]; returns ln[M], S, T, G at t0 + h."""

    def rate(t, y_, guess, g_guess):
        M_ = np.exp(y_)
        S_, T_, G_ = radical_state(r, r.initiator(t), M_, guess, g_guess)
        return -monomer_consumption(r, M_, S_, T_, G_), S_, G_

    f1, s1, g1 = rate(t0, y0, S_guess, G_guess)
    f2, s2, g2 = rate(t0 + h / 2, y0 + h / 2 * f1, s1, g1)
    f3, _, _ = rate(t0 + h / 2, y0 + h / 2 * f2, s2, g2)
    f4, _, _ = rate(t0 + h, y0 + h * f3, s2, g2)
    y = y0 + h / 6.0 * (f1 + 2.0 * f2 + 2.0 * f3 + f4)
    return (y, *radical_state(r, r.initiator(t0 + h), np.exp(y), s2, g2))


def monomer_consumption(r: RecipeRates, M, S, T, G=1.0) -> np.ndarray:
    """-d ln[M]/dt: propagation by SPR and MCR plus the monomer that starts each new chain.

    Under QSSA chains start as often as they stop (termination + transfer), and every start adds one
    monomer unit (initiator or transfer radical + M), so the dead polymer mass equals the monomer used.
    """
    ss, st, tt = 2.0 * G * r.kss * S * S, 4.0 * G * r.kst * S * T, 2.0 * G * r.ktt * T * T
    transfer = (r.ktr_M * M + r.ktr_S * r.solvent) * S + r.ktr_S_mcr * r.solvent * T
    return r.kp * S + r.kpt * T + (ss + st + tt + transfer) / M


@dataclass
class ChainRates:
    """Instantaneous dead-polymer formation at every node (arrays (n, N+2))."""

    propagation: np.ndarray  # propagation steps per L and s
    chains_exp: np.ndarray  # dead chains per L and s from disproportionation + transfer, ~ geometric
    chains_comb: np.ndarray  # dead chains per L and s from combination, ~ sum of two geometrics
    a: np.ndarray  # stops per propagation step (tau + beta); P(radical propagates) = 1 / (1 + a)
    tau: np.ndarray
    beta: np.ndarray


def chain_rates(r: RecipeRates, M, S, T, G=1.0) -> ChainRates:
    """Hamielec's tau and beta and the chain formation rates from radical and monomer concentrations
    (``G``: the termination scale of :func:`radical_state`)."""
    col = (lambda v: v[:, None]) if np.ndim(M) == 2 else (lambda v: v)
    kss, kst, ktt = G * col(r.kss), G * col(r.kst), G * col(r.ktt)
    ss, st, tt = 2.0 * kss * S * S, 4.0 * kst * S * T, 2.0 * ktt * T * T  # radicals lost per L and s
    loss_comb = r.comb_ss * ss + r.comb_st * st + r.comb_tt * tt
    loss_disp = (1 - r.comb_ss) * ss + (1 - r.comb_st) * st + (1 - r.comb_tt) * tt
    solvent = col(r.solvent)
    transfer = (col(r.ktr_M) * M + col(r.ktr_S) * solvent) * S + col(r.ktr_S_mcr) * solvent * T
    prop = (col(r.kp) * S + col(r.kpt) * T) * M
    # no radicals at a node (the initiator spent, see solve_qssa): no chain forms there (zero formation
    # rates), so any finite chain statistics will do; 0/0 would spread NaN through the time integrals
    idle = prop == 0.0
    prop_ = np.where(idle, 1.0, prop)
    tau = np.where(idle, 1.0, (loss_disp + transfer) / prop_)
    beta = np.where(idle, 0.0, loss_comb / prop_)
    return ChainRates(prop, loss_disp + transfer, 0.5 * loss_comb, tau + beta, tau, beta)
