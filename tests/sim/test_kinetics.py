"""Analytic limits of the forward model (issue 2, acceptance 1-2) and numerical convergence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from polyinv.schema import M_MONOMER
from polyinv.sim import DEFAULT_PARAMETERS, no_backbiting, simulate, simulate_many
from polyinv.sim.distribution import instantaneous_moments
from polyinv.sim.kinetics import RecipeRates, chain_rates, radical_state, solve_qssa

RECIPE = {"cBA_0": 1.5, "cAIBN_0": 0.01, "temp": 70.0}


def ideal_params(comb: float):
    """No backbiting, no transfer, constant [I], one termination mode (comb = fraction by combination)."""
    return no_backbiting(DEFAULT_PARAMETERS).replace(
        C_M=0.0, C_S=0.0, C_S_mcr=0.0, comb_ss=comb, comb_st=comb, comb_tt=comb, initiator_consumption=False
    )


def closed_form(params, recipe, t):
    """Conversion and cumulative number-average chain length of the ideal disproportionation case."""
    T = recipe["temp"]
    kp, kd, kt, f = (params.kp.at(T), params.kd.at(T), params.kt_ss.at(T), params.efficiency(T))
    radicals = np.sqrt(f * kd * recipe["cAIBN_0"] / kt)  # R_i = 2 f kd [I] = 2 kt [R]^2
    t = np.asarray(t, dtype=float)
    conversion = 1.0 - np.exp(-kp * radicals * t)
    chains = (
        2.0 * f * kd * recipe["cAIBN_0"] * np.maximum(t, 1e-300)
    )  # disproportionation: one chain per radical
    return conversion, recipe["cBA_0"] * conversion / chains, kp, kt, radicals


def test_conversion_and_chain_length_match_closed_form():
    params = ideal_params(comb=0.0)
    res = simulate(RECIPE, params, t_max=3600.0, x_stop=0.999)
    assert not res.reached_x_stop and res.stop_time == 3600.0
    x_ref, xn_ref, *_ = closed_form(params, RECIPE, res.times[1:])
    np.testing.assert_allclose(res.conversion_profile[1:], x_ref, rtol=0.01)
    assert res.conversion > 0.9  # the comparison covers almost the whole conversion range
    _, xn_end, *_ = closed_form(params, RECIPE, 3600.0)
    assert res.Mn / M_MONOMER == pytest.approx(xn_end, rel=0.01)


def test_stop_time_is_exact_crossing_of_conversion_limit():
    params = ideal_params(comb=0.0)
    res = simulate(RECIPE, params, x_stop=0.5)
    *_, kp, _, radicals = closed_form(params, RECIPE, 0.0)
    assert res.reached_x_stop
    assert res.conversion == pytest.approx(0.5, abs=1e-9)
    assert res.stop_time == pytest.approx(np.log(2.0) / (kp * radicals), rel=0.01)
    assert res.cBA_time == pytest.approx(0.5 * RECIPE["cBA_0"], rel=1e-9)


def test_instantaneous_chain_length_is_kinetic_chain_length():
    params = ideal_params(comb=0.0)
    _, _, kp, kt, radicals = closed_form(params, RECIPE, 0.0)
    nu = kp * RECIPE["cBA_0"] / (2.0 * kt * radicals)  # propagation rate / initiation rate
    xn, _ = instantaneous_moments(1.0 / nu, 0.0)
    assert xn == pytest.approx(nu, rel=0.01)
    # the full model at very low conversion gives the same number-average
    res = simulate(RECIPE, params, t_max=2.0, n_steps=4)
    assert res.Mn / M_MONOMER == pytest.approx(nu, rel=0.01)


@pytest.mark.parametrize(("tau", "beta", "expected"), [(1e-3, 0.0, 2.0), (0.0, 1e-3, 1.5), (0.02, 0.0, 2.0)])
def test_instantaneous_dispersity_limits(tau, beta, expected):
    xn, xw = instantaneous_moments(tau, beta)
    assert xw / xn == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize(("comb", "expected"), [(0.0, 2.0), (1.0, 1.5)])
def test_low_conversion_dispersity_of_full_model(comb, expected):
    res = simulate(RECIPE, ideal_params(comb), t_max=2.0, n_steps=4)
    assert res.conversion < 0.01
    assert res.dispersity == pytest.approx(expected, rel=0.02)
    assert np.all(res.number_fraction >= 0) and np.all(res.weight_fraction >= 0)


def test_fine_distribution_is_consistent_with_moments():
    res = simulate(RECIPE)
    r = np.arange(1, 200_000, dtype=float)
    from polyinv.sim.distribution import cumulative_moments, number_density
    from polyinv.sim.kinetics import chain_rates, integrate

    rates = RecipeRates.build(DEFAULT_PARAMETERS, [1.5], [0.01], [70.0])
    traj = integrate(rates)
    cr = chain_rates(rates, traj.M, traj.S, traj.T)
    lam0, lam1, lam2 = cumulative_moments(cr, traj.weights)
    counts = number_density(cr, traj.weights, r)[0]
    assert counts.sum() == pytest.approx(lam0[0], rel=1e-6)
    assert (counts * r).sum() == pytest.approx(lam1[0], rel=1e-6)
    assert (counts * r * r).sum() == pytest.approx(lam2[0], rel=1e-6)
    assert res.Mn == pytest.approx(M_MONOMER * lam1[0] / lam0[0], rel=1e-9)
    # dead polymer mass equals the monomer consumed
    assert lam1[0] == pytest.approx(1.5 - res.cBA_time, rel=1e-4)


def test_qssa_balances_hold():
    rates = RecipeRates.build(
        DEFAULT_PARAMETERS,
        np.array([0.5, 1.5, 3.0]),
        np.array([0.0025, 0.01, 0.02]),
        np.array([60.0, 70.0, 80.0]),
    )
    S, T = solve_qssa(rates, rates.I0, rates.M0)
    Ri = 2 * rates.f * rates.kd * rates.I0
    loss = 2 * rates.kss * S**2 + 4 * rates.kst * S * T + 2 * rates.ktt * T**2
    np.testing.assert_allclose(loss, Ri, rtol=1e-9)
    mcr_in = rates.kbb * S
    mcr_out = T * (
        rates.kpt * rates.M0 + rates.ktr_S_mcr * rates.solvent + 2 * rates.kst * S + 2 * rates.ktt * T
    )
    np.testing.assert_allclose(mcr_out, mcr_in, rtol=1e-9)


def test_time_grid_is_converged():
    recipes = {
        "cBA_0": [0.5, 3.0, 1.5, 2.0],
        "cAIBN_0": [0.02, 0.0025, 0.01, 0.015],
        "temp": [80.0, 60.0, 70.0, 77.5],
    }
    import pandas as pd

    coarse = simulate_many(pd.DataFrame(recipes), progress=False)
    fine = simulate_many(pd.DataFrame(recipes), n_steps=2400, progress=False)
    for col in ("time", "cBA_time", "Mn", "Mw"):
        np.testing.assert_allclose(coarse[col], fine[col], rtol=2e-3, err_msg=col)
    mmd_cols = [c for c in coarse.columns if c.startswith("MMD")]
    assert np.abs(coarse[mmd_cols].to_numpy() - fine[mmd_cols].to_numpy()).max() < 2e-3


def test_parameter_switches_are_real_parameters():
    off = ideal_params(0.0)
    assert off.kbb.at(70.0) == 0.0
    assert dataclasses.replace(off, initiator_consumption=True).initiator_consumption
    res = simulate(RECIPE, off)
    assert res.mcr_fraction == 0.0


def test_spent_initiator_leaves_no_radicals_instead_of_an_error():
    """Far above the design's temperatures AIBN is gone within the run (150 °C: half-life about 3 s), and its
    radical source underflows to zero. The QSSA then answers S = T = 0 — it raised "did not converge"
    before, and a forward check of a model's wild recipe (clipped to at most 200 °C) took a whole
    training run down with it. A NaN input stays NaN instead of raising."""
    import pandas as pd

    rates = RecipeRates.build(
        DEFAULT_PARAMETERS, np.array([2.0, 2.0, 2.0]), np.array([0.01] * 3), np.array([70.0, 150.0, 150.0])
    )
    S, T = solve_qssa(rates, np.array([0.01, 0.0, 1e-310]), rates.M0)  # the last one a denormal source
    assert S[0] > 0 and T[0] > 0
    assert (S[1:] == 0).all() and (T[1:] == 0).all()
    S, T = solve_qssa(rates, rates.I0, np.array([2.0, np.nan, 2.0]))
    assert np.isnan(S[1]) and np.isfinite(S[[0, 2]]).all()

    sim = simulate_many(
        pd.DataFrame({"cBA_0": [2.0, 2.0], "cAIBN_0": [0.01, 0.01], "temp": [150.0, 200.0]}),
        progress=False,
        extra_columns=True,
    )
    outputs = sim[["time", "cBA_time", "Mn", "Mw", *(c for c in sim.columns if c.startswith("MMD"))]]
    assert np.isfinite(outputs.to_numpy()).all()
    hot = sim.iloc[0]
    assert (
        hot.mcr_fraction_stop == 0.0 and not hot.reached_x_stop and hot.conversion < 0.9
    )  # dead-end polymerisation
    from polyinv.sim.simulate import _mcr_fraction

    np.testing.assert_array_equal(
        _mcr_fraction(np.array([np.nan, 0.0, 1.0]), np.array([np.nan, 0.0, 1.0])), [np.nan, 0.0, 0.5]
    )  # a lost run stays NaN


def test_chain_length_dependent_termination_solves_its_fixed_point():
    """kt = kt_ref (nu / nu_ref)^-alpha_t (issue 31): G is the fixed point, the radical balance holds with the
    scaled kt, and alpha_t = 0 is polyinv's scheme exactly (G = 1)."""
    params = DEFAULT_PARAMETERS.replace(alpha_t=0.5)
    rates = RecipeRates.build(
        params, np.array([0.5, 1.5, 3.0]), np.array([0.0025, 0.01, 0.02]), np.array([60.0, 70.0, 80.0])
    )
    S, T, G = radical_state(rates, rates.I0, rates.M0)
    Ri = 2 * rates.f * rates.kd * rates.I0
    loss = G * (2 * rates.kss * S**2 + 4 * rates.kst * S * T + 2 * rates.ktt * T**2)
    np.testing.assert_allclose(loss, Ri, rtol=1e-9)
    cr = chain_rates(rates, rates.M0, S, T, G)
    nu = (1 + cr.a) / cr.a
    np.testing.assert_allclose(G, (nu / params.nu_ref) ** -0.5, rtol=1e-6)
    assert not np.allclose(G, 1.0)
    flat = RecipeRates.build(DEFAULT_PARAMETERS, rates.M0, rates.I0, np.array([60.0, 70.0, 80.0]))
    S0, T0, G0 = radical_state(flat, flat.I0, flat.M0)
    np.testing.assert_array_equal(G0, 1.0)
    np.testing.assert_array_equal(S0, solve_qssa(flat, flat.I0, flat.M0)[0])


@pytest.mark.slow
def test_chain_length_dependent_termination_is_converged_in_time():
    recipes = pd.DataFrame(
        {"cBA_0": [0.5, 3.0, 1.5], "cAIBN_0": [0.02, 0.0025, 0.01], "temp": [80.0, 60.0, 70.0]}
    )
    params = DEFAULT_PARAMETERS.replace(alpha_t=0.8)
    coarse = simulate_many(recipes, params, progress=False)
    fine = simulate_many(recipes, params, n_steps=2400, progress=False)
    for col in ("time", "cBA_time", "Mn", "Mw"):
        np.testing.assert_allclose(coarse[col], fine[col], rtol=2e-3, err_msg=col)
    # termination now depends on the chains' length: the outcomes move (the mechanism is on)
    flat = simulate_many(recipes, progress=False)
    assert (coarse["cBA_time"] != flat["cBA_time"]).all()
