"""KMC-like sampling noise: draw a finite number of chains from the cumulative distribution."""

from __future__ import annotations

import numpy as np

from polyinv.schema import M_MONOMER
from polyinv.sim.grid import DEFAULT_AXIS, MMDAxis


def sample_chain_lengths(
    chains_exp: np.ndarray,
    chains_comb: np.ndarray,
    a: np.ndarray,
    weights: np.ndarray,
    n_chains: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw ``n_chains`` dead-chain lengths of one recipe from its number distribution.

    The distribution is the time-weighted mixture of the instantaneous ones (arrays over the time nodes):
    a chain comes from node k with probability proportional to its formation rate times the quadrature
    weight; disproportionation/transfer chains are geometric(a), combination chains the sum of two.
    """
    counts_exp = weights * chains_exp
    counts_comb = weights * chains_comb
    probs = np.concatenate([counts_exp, counts_comb])
    probs = probs / probs.sum()
    pick = rng.choice(probs.size, size=n_chains, p=probs)
    k = pick % a.size
    p = a[k] / (1.0 + a[k])  # probability that a radical stops instead of propagating
    lengths = rng.geometric(p).astype(float)
    comb = pick >= a.size
    lengths[comb] += rng.geometric(p[comb])
    return lengths


def mmd_from_sample(
    lengths: np.ndarray,
    rng: np.random.Generator,
    axis: MMDAxis = DEFAULT_AXIS,
    monomer_molar_mass: float = M_MONOMER,
) -> tuple[np.ndarray, float, float]:
    """MMD on ``axis`` (mass histogram per unit log10 M, normalised as the axis says), Mn and Mw of a chain sample.

    Each chain of length r is spread uniformly over [r - 1/2, r + 1/2] (the continuous representation of
    the deterministic MMD) and goes into the axis cell (width delta, centred on a grid point)
    holding its log10 M; chains outside the grid go into the end cells so the MMD stays normalised.
    Mn and Mw are exact averages over the (integer) sample.
    """
    mass = lengths * monomer_molar_mass
    spread = (lengths + rng.uniform(-0.5, 0.5, size=lengths.size)) * monomer_molar_mass
    cell = np.clip(
        np.floor((np.log10(spread) - axis.log10m_min) / axis.delta + 0.5), 0, axis.n_points - 1
    ).astype(int)
    hist = np.bincount(cell, weights=spread, minlength=axis.n_points)
    mmd = axis.normalise(hist / (spread.sum() * axis.delta))
    mn = float(mass.mean())
    mw = float((mass * mass).sum() / mass.sum())
    return mmd, mn, mw
