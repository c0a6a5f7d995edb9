"""Batch work on a 2-worker Dask LocalCluster: the same answers as one machine, in input order, nothing lost
when a worker dies, and the one-line errors of the options."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyinv.batch import Cluster, map_chunks, row_chunks
from polyinv.cli import predict as predict_cli
from polyinv.cli.fit import main as fit_main
from polyinv.cli.predict import main as predict_main
from polyinv.cli.simulate import main as simulate_main
from polyinv.errors import PolyinvError
from polyinv.models import load_model
from polyinv.refine.solver import NoiseModel
from polyinv.sim.designs import lhs_design

TWO = Cluster(workers=2)


def _dies_once(chunk, marker: str):
    """An even chunk's first run kills its worker process (as a lost machine would), then it answers. Three
    deaths in all: Dask fails a task that was running on more than ``allowed-failures`` (3) dying workers, and a
    death counts against every task its worker held, so killing on every chunk can fail a chunk by chance."""
    flag = Path(marker) / f"chunk{chunk}"
    if chunk % 2 == 0 and not flag.exists():
        flag.write_text("killed")
        os._exit(1)
    return chunk * chunk


def test_a_killed_worker_loses_no_chunk_and_the_order_holds(tmp_path):
    out = map_chunks(_dies_once, list(range(6)), TWO, progress=False, shared={"marker": str(tmp_path)})
    assert out == [i * i for i in range(6)]
    assert len(list(tmp_path.glob("chunk*"))) == 3  # each even chunk's first run died with its worker


def _raises(chunk):
    raise ValueError(f"bad chunk {chunk}")


def test_a_chunk_that_fails_every_retry_is_one_error_and_nothing_is_returned():
    with pytest.raises(PolyinvError, match="chunk failed on the cluster after 2 retries: bad chunk"):
        map_chunks(_raises, [1, 2], TWO, progress=False)


def test_simulate_on_two_workers_writes_the_one_machine_file(tmp_path):
    recipes = lhs_design(2500, 3)
    recipes.to_csv(tmp_path / "recipes.csv", index=False)
    files = []
    for name, extra in (("one.csv", []), ("two.csv", ["--workers", "2"])):
        argv = ["--recipes", str(tmp_path / "recipes.csv"), "--out", str(tmp_path / name), "-q", *extra]
        assert simulate_main(argv) == 0
        files.append(pd.read_csv(tmp_path / name))
    assert len(files[0]) == 2500
    pd.testing.assert_frame_equal(files[0], files[1], check_exact=True)


@pytest.mark.slow
def test_predict_with_refine_and_verify_on_two_workers_answers_as_one_machine(tmp_path, monkeypatch):
    """A GP fitted on polyinv's kinetics, its refine decision switched on: 150 rows in chunks of 100 and 50."""
    monkeypatch.setattr(predict_cli, "CHUNK_ROWS", 100)
    assert (
        simulate_main(["--design", "lhs", "--n", "80", "--seed", "1", "--out", str(tmp_path / "t.csv"), "-q"])
        == 0
    )
    argv = [
        "--config",
        "gp.yaml",
        "--data.path",
        str(tmp_path / "t.csv"),
        "--output.root",
        str(tmp_path / "r"),
    ]
    argv += ["--model.mmd_pcs", "6", "--trust.refine", "none", "--trainer.enable_progress_bar", "false"]
    assert fit_main([*argv, "-q"]) == 0
    path = next((tmp_path / "r").rglob("model.skops"))
    model = load_model(path)
    model.domain["refine"] = {
        "use": True,
        "noise": NoiseModel(2000.0, 0.02, 1.0, (0.3, 0.3, 5.0)).to_dict(),
        "why": "switched on by the test",
    }
    model.save(path)
    assert (
        simulate_main(
            ["--design", "lhs", "--n", "150", "--seed", "2", "--out", str(tmp_path / "rows.csv"), "-q"]
        )
        == 0
    )
    tables = []
    for name, extra in (("one.csv", []), ("two.csv", ["--workers", "2"])):
        argv = ["--ckpt", str(path), "--input", str(tmp_path / "rows.csv"), "--output", str(tmp_path / name)]
        assert predict_main([*argv, "--refine", "--verify", "--interval", "0.9", "-q", *extra]) == 0
        tables.append(pd.read_csv(tmp_path / name))
    one, two = tables
    assert list(one.columns) == list(two.columns) and one["refine_changed"].any()
    assert (two["row"].to_numpy() == np.arange(150)).all()
    numbers = one.select_dtypes("number").columns
    np.testing.assert_allclose(two[numbers].to_numpy(), one[numbers].to_numpy(), rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(one.drop(columns=numbers), two.drop(columns=numbers))


def test_cluster_options_are_checked():
    with pytest.raises(PolyinvError, match="exclude each other"):
        Cluster(workers=2, scheduler="tcp://x:1")
    with pytest.raises(PolyinvError, match="at least 1"):
        Cluster(workers=0)
    assert row_chunks(2500, 1000) == [(0, 1000), (1000, 2000), (2000, 2500)]


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys):
    argv = [
        "--design",
        "lhs",
        "--n",
        "5",
        "--out",
        str(tmp_path / "x.csv"),
        "--scheduler",
        "tcp://127.0.0.1:9",
    ]
    assert simulate_main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: --scheduler tcp://127.0.0.1:9: cannot connect")
        and not (tmp_path / "x.csv").exists()
    )


def _strip_seconds(value):
    """A calibration file without its timings (the only part that may differ between runs)."""
    if isinstance(value, dict):
        return {k: _strip_seconds(v) for k, v in value.items() if "second" not in str(k)}
    return value


@pytest.mark.slow
def test_calibrate_and_predict_from_it_on_two_workers_answer_as_one_machine(tmp_path):
    """Lab samples of four MMA reactions: the calibration (global stage, finite differences, the inversion of
    the training reactions) and predict --calibration's inversions per reaction, here and on 2 workers."""
    import yaml

    from polyinv.cli.calibrate import main as calibrate_main

    from tests.test_invert import lab_calibration

    rows = [
        {"cMMA_0": m, "cAIBN_0": i, "temp": t, "time": s, "reaction": f"R{k}"}
        for k, (m, i, t) in enumerate(
            [(2.0, 0.01, 65.0), (4.0, 0.02, 75.0), (3.0, 0.03, 60.0), (5.0, 0.008, 80.0)]
        )
        for s in (900.0, 3600.0, 10800.0)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "recipes.csv", index=False)
    cal = lab_calibration(tmp_path)
    data = tmp_path / "lab.csv"
    argv = ["--recipes", str(tmp_path / "recipes.csv"), "--calibration", cal, "--out", str(data), "-q"]
    assert simulate_main(argv) == 0
    stored, answers = [], []
    for name, extra in (("one", []), ("two", ["--workers", "2"])):
        out = tmp_path / f"{name}.yaml"
        argv = ["--system", "mma", "--protocol", "sampled", "--data", str(data), "--out", str(out)]
        assert calibrate_main([*argv, "--parameters", "kt", "gel", "--max-rows", "12", "-q", *extra]) == 0
        stored.append(_strip_seconds(yaml.safe_load(out.read_text())))
        answer = tmp_path / f"{name}.csv"
        argv = [
            "--calibration",
            str(out),
            "--input",
            str(data),
            "--group",
            "reaction",
            "--output",
            str(answer),
        ]
        assert predict_main([*argv, "--interval", "0.9", "-q", *extra]) == 0
        answers.append(pd.read_csv(answer))
    assert stored[0] == stored[1] and stored[0]["inversion"]["reactions"] == 4
    pd.testing.assert_frame_equal(answers[0], answers[1], check_exact=True)
    assert list(answers[0]["reaction"]) == ["R0", "R1", "R2", "R3"]


def test_design_on_two_workers_answers_as_one_machine():
    from polyinv.batch import parallel_map
    from polyinv.design import design
    from polyinv.sim.forward import ForwardModel

    bounds = {"cBA_0": (0.5, 3.0), "cAIBN_0": (0.0025, 0.02), "temp": (60.0, 80.0), "time": (60.0, 3600.0)}
    targets = {"Mn": 20000.0, "Mw": 45000.0, "conversion": 0.6}
    tables, sent = [], []

    def counted(workers):
        def run(fn, items):
            items = list(items)
            sent.append(len(items))
            return workers(fn, items)

        return run if workers else None

    for cluster in (None, TWO):
        with parallel_map(cluster) as workers:
            result = design(ForwardModel(), targets, bounds, n_starts=6, max_nfev=6, workers=counted(workers))
        tables.append(result.table)
    assert sent and set(sent) == {4}  # each Jacobian's four column groups went to the cluster
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)


@pytest.mark.slow
def test_design_of_several_target_mmds_on_two_workers_writes_the_one_machine_file(tmp_path):
    from polyinv.cli.design import main as design_main

    cal = tmp_path / "ba.yaml"
    cal.write_text(
        "polyinv_calibration: 1\nsystem_key: ba\nparameters: {}\n"
        "axis: {log10m_min: 1.85, log10m_max: 6.6, n_points: 100, normalisation: density}\n"
        "protocol: {kind: stop, t_max_s: 3600.0, x_stop: 0.9}\n"
    )
    targets = tmp_path / "targets.csv"
    assert simulate_main(["--design", "lhs", "--n", "2", "--seed", "4", "--out", str(targets), "-q"]) == 0
    files = []
    for name, extra in (("one.csv", []), ("two.csv", ["--workers", "2"])):
        argv = [
            "--calibration",
            str(cal),
            "--mmd",
            str(targets),
            "--starts",
            "4",
            "--out",
            str(tmp_path / name),
        ]
        assert design_main([*argv, "-q", *extra]) == 0
        files.append(pd.read_csv(tmp_path / name))
    assert set(files[0]["row"]) == {0, 1}  # one design per target MMD, each its own task on the cluster
    pd.testing.assert_frame_equal(files[0], files[1], check_exact=True)
