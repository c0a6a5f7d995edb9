"""``polyinv predict --refine`` (issue 22): recipes refined against the model file's forward model.

Rows are made by polyinv's simulator, so the forward model is the generator: refinement must recover the
true recipe and its stop time from a perturbed start, the fit-time check must let it run there, and a model
saved without the check returns its own answer and says why.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from polyinv.cli import fit as fit_cli
from polyinv.cli import predict as predict_cli
from polyinv.cli import simulate as simulate_cli
from polyinv.metrics import evaluate
from polyinv.refine import NoiseModel, refine
from polyinv.schema import TARGETS
from polyinv.sim import lhs_design, simulate_many
from polyinv.sim.forward import ForwardModel

from tests.synthetic import REPO


@pytest.mark.slow
def test_refine_recovers_recipes_and_stop_times_from_a_perturbed_start():
    forward = ForwardModel()
    recipes = lhs_design(10, seed=3)
    rows = simulate_many(recipes, progress=False)
    rng = np.random.default_rng(0)
    true = rows[["cBA_0", "cAIBN_0", "temp"]].to_numpy()
    start = true * np.column_stack(
        [1 + rng.normal(0, 0.02, 10), np.exp(rng.normal(0, 0.1, 10)), 1 + rng.normal(0, 0.01, 10)]
    )
    noise = NoiseModel(chains=1e6, scalar=1e-3, prior=0.1, scale=(0.05, 0.1, 1.0))
    out = refine(
        forward, rows, start, noise, low=np.array([0.5, 1e-3, 45.0]), high=np.array([6.0, 0.05, 100.0])
    )
    assert np.allclose(out.recipe[:, 0], true[:, 0], rtol=2e-3)
    assert np.allclose(out.recipe[:, 1], true[:, 1], rtol=2e-2), np.c_[out.recipe[:, 1], true[:, 1]]
    assert np.allclose(out.recipe[:, 2], true[:, 2], atol=0.1)
    stopped = rows["time"].to_numpy() < forward.t_max
    assert stopped.any() and (~stopped).any()  # both kinds of run are in the rows
    assert np.allclose(out.time[~stopped], forward.t_max)  # ran the full time: the data says so
    assert np.allclose(out.time[stopped], rows["time"].to_numpy()[stopped], rtol=0.01)
    assert out.changed.all() and np.median(out.hellinger) < 1e-3


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refine")
    train, query = folder / "train.csv", folder / "query.csv"
    assert (
        simulate_cli.main(["--design", "lhs", "--n", "80", "--seed", "1", "--out", str(train), "--quiet"])
        == 0
    )
    assert (
        simulate_cli.main(["--design", "lhs", "--n", "8", "--seed", "2", "--out", str(query), "--quiet"]) == 0
    )
    return folder, train, query


def _fit(folder, train, name, *extra):
    assert (
        fit_cli.main(
            [
                "--config",
                str(REPO / "configs" / "gp.yaml"),
                "--data.path",
                str(train),
                "--data.sheet",
                "null",
                "--output.root",
                str(folder / "runs"),
                "--name",
                name,
                *extra,
            ]
        )
        == 0
    )
    return max((folder / "runs" / name).glob("version_*"))


@pytest.mark.slow
def test_predict_refine_where_the_forward_model_is_the_generator(small_files, capsys):
    folder, train, query = small_files
    run_dir = _fit(folder, train, "gp_refine", "--trust.refine_rows", "20")
    check = json.loads((run_dir / "run.json").read_text())["refine_check"]
    assert check["use"] and check["refined_r2"] > check["model_r2"] + 0.002, check
    capsys.readouterr()
    assert (
        predict_cli.main(
            ["--ckpt", str(run_dir), "--input", str(query), "--output", str(folder / "plain.csv")]
        )
        == 0
    )
    assert (
        predict_cli.main(
            [
                "--ckpt",
                str(run_dir),
                "--input",
                str(query),
                "--refine",
                "--candidates",
                "2",
                "--plot-dir",
                str(folder / "plots"),
                "--output",
                str(folder / "r.csv"),
                "--interval",
                "0.9",
            ]
        )
        == 0
    )
    assert (
        len(list((folder / "plots").glob("candidates_row*.png"))) == 8
    )  # one per row, beside the verify plots
    out, err = capsys.readouterr()
    assert "--refine: refinement raised" in out and "--candidates: refinement raised" in out
    plain, refined = pd.read_csv(folder / "plain.csv"), pd.read_csv(folder / "r.csv")
    for t in TARGETS:  # the model's own answer beside the refined one
        assert np.allclose(refined[f"model_{t}"], plain[t])
    assert {"refine_hellinger", "refine_loglik", "refine_changed", "in_domain"} <= set(refined.columns)
    first = refined[[f"candidate1_{t}" for t in TARGETS]].to_numpy()
    second = refined[[f"candidate2_{t}" for t in TARGETS]].to_numpy()
    assert np.isfinite(first).all() and (refined["candidate1_hellinger"] < 0.01).all()
    has_second = np.isfinite(second).all(axis=1)
    assert (np.isnan(second[~has_second])).all()  # a row with one candidate leaves the second empty
    assert (
        refined.loc[has_second, "candidate2_loglik"] <= refined.loc[has_second, "candidate1_loglik"] + 3.9
    ).all()
    truth = pd.read_csv(query)[list(TARGETS)].to_numpy()
    before = evaluate(truth, plain[list(TARGETS)].to_numpy())["global"]["r2"]
    after = evaluate(truth, refined[list(TARGETS)].to_numpy())["global"]["r2"]
    assert after > max(before, 0.98), (before, after)
    # an interval describes the value in its row: the model's interval sits beside the model's answer; a refined
    # row carries no <target>_lo/_hi (issue 30), an unchanged row keeps the model's
    changed = refined["refine_changed"].to_numpy(bool)
    assert changed.any() and "refined row(s) carry no <target>_lo/_hi" in err
    for t in TARGETS:
        assert (refined[f"model_{t}_lo"] <= refined[f"model_{t}"] + 1e-12).all()
        assert (refined[f"model_{t}"] <= refined[f"model_{t}_hi"] + 1e-12).all()
        assert refined.loc[changed, [f"{t}_lo", f"{t}_hi"]].isna().all().all()
        assert np.allclose(refined.loc[~changed, f"{t}_lo"], refined.loc[~changed, f"model_{t}_lo"])


def test_predict_refine_without_the_check_returns_the_models_answer(small_files, capsys):
    folder, train, query = small_files
    run_dir = _fit(folder, train, "gp_norefine", "--trust.refine", "none")
    capsys.readouterr()
    assert (
        predict_cli.main(
            ["--ckpt", str(run_dir), "--input", str(query), "--refine", "--output", str(folder / "n.csv")]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "returning the model's answer" in err and "trust.refine none" in err
    assert "model_cBA_0" not in pd.read_csv(folder / "n.csv").columns
    assert (
        fit_cli.main(
            [
                "--config",
                "gp.yaml",
                "--data.path",
                str(train),
                "--output.root",
                str(folder / "bad"),
                "--trust.refine_rows",
                "3",
            ]
        )
        == 2
    )
    assert "trust.refine_rows must be at least 10, got 3" in capsys.readouterr().err
    assert (
        predict_cli.main(
            [
                "--ckpt",
                str(run_dir),
                "--input",
                str(query),
                "--candidates",
                "0",
                "--output",
                str(folder / "c.csv"),
            ]
        )
        == 2
    )
    assert "--candidates must lie between 1 and 10, got 0" in capsys.readouterr().err
    assert not (folder / "bad").exists()


@pytest.mark.slow
def test_design_meets_reachable_targets_and_says_when_none_can(tmp_path, capsys):
    from polyinv.cli import design as design_cli

    row = simulate_many(
        pd.DataFrame({"cBA_0": [1.5], "cAIBN_0": [0.008], "temp": [70.0]}), progress=False
    ).iloc[0]
    conversion = 1 - row["cBA_time"] / row["cBA_0"]
    out = tmp_path / "d.csv"
    assert (
        design_cli.main(
            [
                "--Mn",
                f"{row['Mn']:.1f}",
                "--Mw",
                f"{row['Mw']:.1f}",
                "--conversion",
                f"{conversion:.4f}",
                "--starts",
                "12",
                "--out",
                str(out),
                "--plot",
                str(tmp_path / "d.png"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "meet every target within 5%" in text and "forward model: polyinv defaults" in text
    table = pd.read_csv(out)
    best = table.iloc[0]
    assert best["meets"] and best["worst_miss"] <= 0.05 and (tmp_path / "d.png").exists()
    # the proposal, simulated again on its own, has the properties the table says
    again = simulate_many(
        pd.DataFrame({k: [best[k]] for k in ("cBA_0", "cAIBN_0", "temp")}), t_max=best["time"], progress=False
    ).iloc[0]
    assert abs(again["Mn"] / row["Mn"] - 1) <= 0.05 and abs(again["Mw"] / row["Mw"] - 1) <= 0.05
    assert abs((1 - again["cBA_time"] / again["cBA_0"]) / conversion - 1) <= 0.05
    # a molar mass no recipe inside the study's ranges reaches
    assert design_cli.main(["--Mn", "2000000", "--starts", "8", "--out", str(tmp_path / "none.csv")]) == 0
    assert "no recipe inside the bounds meets every target within 5%" in capsys.readouterr().out
    assert not pd.read_csv(tmp_path / "none.csv")["meets"].any()
    assert design_cli.main(["--Mw", "1", "--dispersity", "2", "--out", str(tmp_path / "x.csv")]) == 2
    assert "give --Mw or --dispersity, not both" in capsys.readouterr().err
    assert design_cli.main(["--Mn", "10000", "--bounds", "temp=80", "--out", str(tmp_path / "x.csv")]) == 2
    assert "expected FIELD=LOW:HIGH" in capsys.readouterr().err
    assert (
        design_cli.main(["--Mn", "10000", "--bounds", "temp=-10:250", "--out", str(tmp_path / "x.csv")]) == 2
    )
    assert "the bounds of temp must lie within 0-200" in capsys.readouterr().err


@pytest.mark.slow
def test_design_from_target_mmds(small_files, capsys):
    """Target MMDs of polyinv-made runs (Mn, Mw computed from the MMD): each gets a recipe whose simulated MMD
    matches within the Hellinger tolerance, re-simulated here; the trained model's answers join the starts."""
    from polyinv.cli import design as design_cli
    from polyinv.design import assumed_conversions, inverse_starts
    from polyinv.metrics import hellinger
    from polyinv.models import load_model, resolve_checkpoint
    from polyinv.schema import MMD_COLUMNS

    folder, train, query = small_files
    run_dir = _fit(folder, train, "gp_design_mmd", "--trust.refine", "none")
    rows = pd.read_csv(query)
    wanted = rows.iloc[:2][list(MMD_COLUMNS)]
    # the model's answers at three assumed conversions, as whole recipes (a GP on 80 rows may answer outside the
    # bounds there: design() clips such starts into the bounds and drops non-physical ones, as the run below does)
    forward = ForwardModel()
    bounds = {
        "cBA_0": (0.5, 3.0),
        "cAIBN_0": (0.0025, 0.02),
        "temp": (60.0, 80.0),
        "time": (60.0, forward.t_max),
    }
    starts = inverse_starts(
        load_model(resolve_checkpoint(run_dir)),
        wanted.iloc[0].to_numpy(),
        rows.loc[0, "Mn"],
        rows.loc[0, "Mw"],
        assumed_conversions(forward),
        bounds,
    )
    assert starts.shape == (3, 4) and np.isfinite(starts).all()
    wanted.to_csv(folder / "wanted.csv", index=False)
    out = folder / "designs.csv"
    capsys.readouterr()
    assert (
        design_cli.main(
            [
                "--mmd",
                str(folder / "wanted.csv"),
                "--ckpt",
                str(run_dir),
                "--starts",
                "6",
                "--top",
                "3",
                "--out",
                str(out),
                "--plot",
                str(folder / "d.png"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "target MMD of data row 0" in text and "target MMD of data row 1" in text
    table = pd.read_csv(out)
    assert (
        set(table["row"]) == {0, 1} and (folder / "d_row0.png").exists() and (folder / "d_row1.png").exists()
    )
    for row, group in table.groupby("row"):
        best = group.iloc[0]
        assert best["meets"] and best["hellinger"] <= 0.02 and best["worst_miss"] <= 0.05, best
        again = simulate_many(
            pd.DataFrame({k: [best[k]] for k in ("cBA_0", "cAIBN_0", "temp")}),
            t_max=best["time"],
            progress=False,
        )
        assert hellinger(wanted.iloc[row].to_numpy(), again[list(MMD_COLUMNS)].to_numpy())[0] <= 0.02
        assert (group["time"].diff().dropna() >= 0).all()  # fastest first
    zero = wanted.copy()
    zero.iloc[1] = 0.0
    zero.to_csv(folder / "zero.csv", index=False)
    assert design_cli.main(["--mmd", str(folder / "zero.csv"), "--out", str(folder / "z.csv")]) == 2
    assert "data row 1 (line 3 of the file): the MMD has no positive value" in capsys.readouterr().err
    low = wanted.copy()
    low["Mn"] = 5e6  # an Mn column, Mw from the MMD: a pair no distribution has
    low.to_csv(folder / "low.csv", index=False)
    assert design_cli.main(["--mmd", str(folder / "low.csv"), "--out", str(folder / "z.csv")]) == 2
    assert "(Mw computed from the MMD) lies below Mn 5e+06 (the file's Mn)" in capsys.readouterr().err
    assert design_cli.main(["--Mn", "20000", "--mmd-tolerance", "0.05", "--out", str(folder / "z.csv")]) == 2
    assert "--mmd-tolerance applies to target MMDs; give --mmd" in capsys.readouterr().err
    assert (
        design_cli.main(
            ["--mmd", str(folder / "wanted.csv"), "--Mn", "20000", "--out", str(folder / "z.csv")]
        )
        == 2
    )
    assert "with --mmd, Mn and Mw come from the file" in capsys.readouterr().err
    assert design_cli.main(["--Mn", "20000", "--sheet", "x", "--out", str(folder / "z.csv")]) == 2
    assert "--sheet names a sheet of the --mmd file" in capsys.readouterr().err
    assert not (folder / "z.csv").exists()


@pytest.mark.slow
def test_design_keeps_given_starts_inside_the_bounds_and_drops_non_physical_ones():
    from polyinv.design import design

    forward = ForwardModel()
    row = simulate_many(
        pd.DataFrame({"cBA_0": [1.5], "cAIBN_0": [0.008], "temp": [70.0]}), progress=False
    ).iloc[0]
    bounds = {
        "cBA_0": (0.5, 3.0),
        "cAIBN_0": (0.0025, 0.02),
        "temp": (60.0, 80.0),
        "time": (60.0, forward.t_max),
    }
    starts = np.array(
        [
            [1.5, 0.008, 70.0, 3600.0],  # the recipe itself
            [0.1, 0.01, 115.0, 3600.0],  # outside the bounds: clipped
            [1.0, -0.001, 70.0, 3600.0],  # negative initiator: dropped
            [np.nan, 0.01, 70.0, 3600.0],
        ]
    )
    result = design(
        forward, {"Mn": row["Mn"], "Mw": row["Mw"]}, bounds, n_starts=2, starts=starts, max_nfev=5
    )
    assert result.met and result.table["worst_miss"].iloc[0] < 0.01
    for name, (lo, hi) in bounds.items():
        assert result.table[name].between(lo, hi).all(), name
