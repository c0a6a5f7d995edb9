"""``model.kind: auto``: the per-target choice on the same folds of the training rows, the spending rule, one
loadable folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.model_selection import KFold

from polyinv import select as select_module
from polyinv.config import CONFIG_DIR, parse
from polyinv.data.module import split_indices
from polyinv.errors import PolyinvError
from polyinv.log import configure
from polyinv.metrics import evaluate
from polyinv.models import AutoModel, GPModel, load_model
from polyinv.runner import run
from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS, TARGETS

from tests.synthetic import write_synthetic


def _candidates(tmp_path):
    """A quick GP and a quick MLP config (3 full-batch steps) as candidate files."""
    gp = yaml.safe_load((CONFIG_DIR / "gp.yaml").read_text())
    gp["model"].update(n_restarts=0, mmd_pcs=3)
    mlp = yaml.safe_load((CONFIG_DIR / "mlp.yaml").read_text())
    mlp["trainer"].update(max_epochs=3, accelerator="cpu", devices=1)
    paths = []
    for name, config in (("gp_quick", gp), ("mlp_quick", mlp)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        paths.append(str(path))
    return paths


def _config(tmp_path, data, **model):
    argv = [
        "--config",
        "auto.yaml",
        "--data.path",
        str(data),
        "--output.root",
        str(tmp_path / "runs"),
        "--seed",
        "1",
        "--model.candidates",
        json.dumps(_candidates(tmp_path)),
        "--trainer.enable_progress_bar",
        "false",
        "--trust.forward",
        "default",
        "--trust.refine",
        "none",
    ]
    for key, value in model.items():
        argv += [f"--model.{key}", str(value)]
    return parse(argv)[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("auto") / "train.csv"
    write_synthetic(path, n=90, seed=4)
    return path


@pytest.mark.slow
def test_auto_chooses_each_target_by_held_out_r2_and_saves_one_loadable_folder(tmp_path, data, capsys):
    config = _config(tmp_path, data, min_gain=0)  # every candidate is scored
    configure(0)  # polyinv's narration on stdout, as a command sets it
    result = run(config, verbose=True)
    out = capsys.readouterr().out
    assert (
        "auto: gp_quick 5-fold held-out R²" in out
        and "auto: mlp_quick fold 5/5" in out
        and "auto: chosen" in out
    )
    info = json.loads((result.run_dir / "run.json").read_text())
    selection = info["selection"]
    scores = selection["heldout_r2"]
    assert set(scores) == {"gp_quick", "mlp_quick"} and not selection["skipped"]
    for t in TARGETS:
        assert selection["choice"][t] == max(scores, key=lambda n, t=t: scores[n][t])
    # the GP's scores are those of its exact predictions of the same 5 folds of the training rows (never the test
    # rows) as the MLP's
    frame = pd.read_csv(data)
    train_idx, _, test_idx = split_indices(len(frame), 0.2, 0.0, seed=1)
    np.testing.assert_array_equal(
        np.sort(test_idx), np.sort(pd.read_csv(result.run_dir / "predictions_test.csv")["row"])
    )
    train = frame.iloc[train_idx]
    gp = GPModel(
        targets=list(TARGETS),
        transforms={"cBA_time": "log", "Mn": "log", "Mw": "log", "cAIBN_0": "log"},
        mmd_pcs=3,
        n_restarts=0,
        random_state=1,
        progress=False,
    )
    arrays = [train[list(c)].to_numpy(np.float64) for c in (MMD_COLUMNS, SIDE_INPUTS, TARGETS)]
    folds = [test for _, test in KFold(5, shuffle=True, random_state=1).split(train_idx)]
    held = gp.fit(*arrays).loo_predict_arrays(*arrays, folds=folds)
    expected = evaluate(arrays[2], held, list(TARGETS))
    for t in TARGETS:
        assert scores["gp_quick"][t] == pytest.approx(expected["targets"][t]["r2"], rel=1e-6)
    # one folder: reloaded, it predicts the test rows as the run scored them, with intervals for every target
    loaded = load_model(result.run_dir)
    assert isinstance(loaded, AutoModel) and loaded.choice == selection["choice"]
    files = {p.name for p in result.run_dir.iterdir()}
    assert (
        "auto.json" in files
        and {f"{n}.{'ckpt' if n.startswith('mlp') else 'skops'}" for n in set(selection["choice"].values())}
        <= files
    )
    preds = pd.read_csv(result.run_dir / "predictions_test.csv")
    test = frame.iloc[preds["row"]]
    mmd, side = test[list(MMD_COLUMNS)].to_numpy(np.float64), test[list(SIDE_INPUTS)].to_numpy(np.float64)
    np.testing.assert_allclose(
        loaded.predict_arrays(mmd, side), preds[[f"{t}_pred" for t in TARGETS]].to_numpy(), rtol=1e-5
    )
    mean, low, high = loaded.predict_interval(mmd, side, 0.9)
    assert np.all(low <= mean + 1e-9) and np.all(mean <= high + 1e-9) and np.all(high[:, :3] > low[:, :3])
    assert loaded.domain and loaded.domain.get("consistency")
    assert selection["heldout_how"] == {
        "gp_quick": "exact folds, kernel fixed",
        "mlp_quick": "refitted per fold",
    }
    # 5 folds of 4/5 of the rows and the final fit on all of them, 3 epochs each
    assert selection["folds"] == 5 and selection["work"]["mlp_quick"] == 5 * len(train_idx) * 3


@pytest.mark.slow
def test_a_candidate_runs_only_where_it_can_change_the_choice_and_its_work_fits_the_budget(tmp_path, data):
    result = run(_config(tmp_path, data, min_gain=1.0), verbose=False)  # nothing can add a whole R²
    selection = json.loads((result.run_dir / "run.json").read_text())["selection"]
    assert set(selection["heldout_r2"]) == {"gp_quick"}
    assert "of global held-out R² to gain (below model.min_gain 1)" in selection["skipped"]["mlp_quick"]
    assert set(selection["choice"].values()) == {"gp_quick"}
    result = run(_config(tmp_path, data, min_gain=0, budget=100), verbose=False)
    selection = json.loads((result.run_dir / "run.json").read_text())["selection"]
    assert (
        "MLP row-epochs" in selection["skipped"]["mlp_quick"]
        and "model.budget 100" in (selection["skipped"]["mlp_quick"])
    )


@pytest.mark.slow
def test_a_busy_machine_changes_the_time_never_the_choice(tmp_path, data, monkeypatch):
    """The same file and seed with a clock that runs 10,000 s per reading (a machine far busier than any
    budget in seconds would allow), and the network's folds one at a time instead of side by side in worker
    processes, give the same scores, skips and choice."""
    idle = run(_config(tmp_path, data, min_gain=0, fold_jobs=2), verbose=False)
    ticks = iter(range(0, 10**9, 10_000))
    monkeypatch.setattr(select_module.time, "perf_counter", lambda: float(next(ticks)))
    busy = run(_config(tmp_path, data, min_gain=0, fold_jobs=1), verbose=False)
    a, b = (json.loads((r.run_dir / "run.json").read_text())["selection"] for r in (idle, busy))
    assert b["seconds_total"] > 10_000 > a["seconds_total"]
    for key in ("choice", "heldout_r2", "skipped", "work"):
        assert a[key] == b[key]


def test_bad_auto_settings_are_one_line_errors(tmp_path, data):
    with pytest.raises(PolyinvError, match="model.folds must be at least 2"):
        run(_config(tmp_path, data, folds=1), verbose=False)
    with pytest.raises(PolyinvError, match="model.budget must be zero or more"):
        run(_config(tmp_path, data, budget=-1), verbose=False)
    with pytest.raises(PolyinvError, match="model.fold_jobs must be 0"):
        run(_config(tmp_path, data, fold_jobs=-2), verbose=False)
    with pytest.raises(PolyinvError, match="model.min_gain must lie in"):
        run(_config(tmp_path, data, min_gain=1.5), verbose=False)
    with pytest.raises(PolyinvError, match="config file not found"):
        run(
            parse(
                [
                    "--config",
                    "auto.yaml",
                    "--data.path",
                    str(data),
                    "--output.root",
                    str(tmp_path),
                    "--model.candidates",
                    '["nope.yaml"]',
                    "--trust.forward",
                    "default",
                    "--trust.refine",
                    "none",
                ]
            )[0],
            verbose=False,
        )
    assert not (tmp_path / "auto").exists()  # refused before any folder was made
