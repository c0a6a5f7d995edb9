"""polyinv tune on Optuna: trials on tiny data, resuming, a shared study, the best config, bad spaces."""

from __future__ import annotations

import pandas as pd
import pytest

from polyinv.cli.tune import main as tune_main
from polyinv.config import parse
from polyinv.errors import PolyinvError
from polyinv.tune import run_study, search_space

from tests.synthetic import fast_overrides

SPACE = "{model.mmd_pcs: {low: 2, high: 6}, model.widths: {choices: [[16], [32, 32]]}, model.activation: {choices: [silu, relu]}}"


def _argv(tmp_path, data, *extra):
    return ["--config", "mlp.yaml", *fast_overrides(data, tmp_path / "runs", epochs=6), *extra]


def test_tune_runs_trials_writes_the_best_config_and_resumes(tmp_path, synthetic_csv, capsys):
    out = tmp_path / "best.yaml"
    common = [
        *_argv(tmp_path, synthetic_csv, "--tune.space", SPACE),
        "--storage",
        f"sqlite:///{tmp_path / 'study.db'}",
        "--out",
        str(out),
        "--sampler_seed",
        "0",
        "--no-test",
    ]
    assert tune_main([*common, "--trials", "3", "--tune.pruner", "none"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("trial ")]
    assert len(lines) == 3 and all("validation R²" in line for line in lines)
    table = pd.read_csv(tmp_path / "best.csv")
    assert len(table) == 3 and set(table["state"]) == {"complete"}
    best = table.loc[table["val_r2"].idxmax()]
    config, _ = parse(["--config", str(out)])  # what polyinv fit --config takes
    assert config["model"]["mmd_pcs"] == best["model.mmd_pcs"]
    assert config["data"]["val_fraction"] == 0.0  # the final fit keeps mlp.yaml's split
    # the same command again with --trials 5: the stored study goes on from 3 finished trials
    assert tune_main([*common, "--trials", "5", "--tune.pruner", "none"]) == 2  # --out exists
    assert tune_main([*common, "--trials", "5", "--tune.pruner", "none", "--overwrite"]) == 0
    assert len(pd.read_csv(tmp_path / "best.csv")) == 5
    assert "trial 3 [4/5]" in capsys.readouterr().out


def test_network_trials_are_pruned_on_the_validation_r2(tmp_path, synthetic_csv):
    argv = _argv(tmp_path, synthetic_csv, "--tune.space", SPACE, "--trainer.max_epochs", "12")
    argv += ["--tune.startup_trials", "1", "--tune.warmup_epochs", "1"]
    config, _ = parse(argv)
    said = []
    study = run_study(argv, config, 6, f"sqlite:///{tmp_path / 's.db'}", "p", 0, said.append)
    states = [t.state.name for t in study.trials]
    assert len(said) == len(study.trials) and states.count("COMPLETE") >= 1
    assert all(t.last_step is not None for t in study.trials)  # every trial reported its epochs


def test_two_processes_share_one_study_through_its_storage(tmp_path, synthetic_csv):
    """Two runs of the same study (as two machines would) fill one trial count between them."""
    import multiprocessing as mp

    argv = _argv(tmp_path, synthetic_csv, "--tune.space", SPACE, "--tune.pruner", "none")
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_one_process, args=(argv, storage)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    import optuna

    study = optuna.load_study(study_name="shared", storage=storage)
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert 4 <= len(finished) <= 5  # 4 wanted; each process may start one more before it sees the count
    assert len({t.number for t in finished}) == len(finished)


def _one_process(argv, storage):
    config, _ = parse(argv)
    run_study(argv, config, 4, storage, "shared", None, lambda line: None)


@pytest.mark.parametrize(
    "space, message",
    [
        ("{model.kind: {choices: [mlp, cnn]}}", "model.kind cannot be searched"),
        ("{data.test_fraction: {low: 0.1, high: 0.3}}", "cannot be searched"),
        ("{model.nosuch: {low: 1, high: 2}}", "no setting model.nosuch in a mlp config"),
        ("{model.lr: {low: 2, high: 1}}", "low < high"),
        ("{model.lr: {low: 0, high: 1, log: true}}", "log range needs low > 0"),
        ("{model.lr: {lo: 0, high: 1}}", "unknown key 'lo'"),
        ("{model.widths: {choices: []}}", "non-empty list"),
    ],
)
def test_a_bad_search_space_is_a_one_line_error_naming_the_key(tmp_path, synthetic_csv, space, message):
    config, _ = parse(_argv(tmp_path, synthetic_csv, "--tune.space", space))
    with pytest.raises(PolyinvError, match=message):
        search_space(config)


def test_a_value_the_model_refuses_fails_before_any_trial(tmp_path, synthetic_csv, capsys):
    argv = _argv(tmp_path, synthetic_csv, "--tune.space", "{model.activation: {choices: [sigmoidish]}}")
    code = tune_main([*argv, "--trials", "2", "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--no-test"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.activation" in err
    assert not (tmp_path / "runs" / "tune" / "mlp_best.yaml").exists()


def test_a_bad_storage_url_is_one_line(tmp_path, synthetic_csv, capsys):
    argv = _argv(tmp_path, synthetic_csv, "--tune.space", SPACE)
    assert tune_main([*argv, "--trials", "1", "--storage", "nosuchdb://x/y", "--no-test"]) == 2
    assert capsys.readouterr().err.startswith("error: --storage nosuchdb://x/y")
