"""The benchmark harness end to end on a small synthetic file: table, cached records, interval coverage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import harness as bm
from benchmarks.learning_curve import learning_curve


@pytest.fixture(scope="module")
def bench(synthetic_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    frame = bm.table(
        ["rf", "gp"], [0, 1], synthetic_csv, out, "synthetic", quick=True, progress=lambda _: None
    )
    return out, frame


@pytest.mark.slow
def test_table_writes_records_markdown_and_parity(bench):
    out, frame = bench
    assert sorted(zip(frame.model, frame.seed, strict=True)) == [("gp", 0), ("gp", 1), ("rf", 0), ("rf", 1)]
    text = (out / "benchmark.md").read_text()
    assert "polyinv GP on MMD PCs" in text and "study RF, composite" in text and "± " in text
    assert (out / "parity_gp.png").stat().st_size > 0 and len(pd.read_csv(out / "records.csv")) == 4
    # the two seeds split differently, so their test rows differ
    runs = [json.loads((out / "records" / f"gp_seed{s}.json").read_text())["run_dir"] for s in (0, 1)]
    rows = [set(pd.read_csv(f"{r}/predictions_test.csv")["row"]) for r in runs]
    assert rows[0] != rows[1]


@pytest.mark.slow
def test_a_table_run_with_overrides_names_models_by_config_and_overrides(bench):
    """With --set a row is not the config file's model alone."""
    _, frame = bench
    plain = bm.markdown_table(frame, ["gp", "rf"], "t")
    overridden = bm.markdown_table(
        frame, ["gp", "rf"], "t — overrides for every model: model.time_model=plain", overridden=True
    )
    assert "| polyinv GP on MMD PCs (configs/gp.yaml) |" in plain and "overrides above" not in plain
    assert "| polyinv GP on MMD PCs (configs/gp.yaml), with the overrides above |" in overridden
    assert "| study RF, composite (randomized search), with the overrides above |" in overridden


@pytest.mark.slow
def test_a_single_run_shows_no_spread(bench):
    """One seed has no standard deviation: its row shows the value alone, not "± 0.0000"."""
    _, frame = bench
    one = bm.markdown_table(frame[frame.seed == 0], ["gp"], "t", with_study=False)
    two = bm.markdown_table(frame, ["gp"], "t", with_study=False)
    row = one.splitlines()[-1]
    assert (
        "±" not in row and f"{frame[(frame.model == 'gp') & (frame.seed == 0)].global_r2.iloc[0]:.4f}" in row
    )
    assert two.splitlines()[-1].count("±") == 10  # 4 R², global R², MSE, 4 relative MAE


@pytest.mark.slow
def test_cached_records_are_rescored_not_retrained(bench, synthetic_csv):
    out, frame = bench
    record_path = out / "records" / "rf_seed0.json"
    before = record_path.stat().st_mtime_ns
    rec = bm.run_one("rf", 0, synthetic_csv, out)
    assert record_path.stat().st_mtime_ns == before  # cached, and the same metrics: nothing rewritten
    expected = frame[(frame.model == "rf") & (frame.seed == 0)].global_r2.iloc[0]
    assert rec["metrics"]["global"]["r2"] == pytest.approx(float(expected))


@pytest.mark.slow
def test_a_cached_record_is_not_rescored_from_another_runs_folder(bench, tmp_path):
    """In a fresh checkout new runs can reuse the folder name a cached record names; rescoring from it gave
    seed 0's record seed 3's metrics once (noisy table, 2026-11-29). The folder's config must match."""
    out, _ = bench
    seed0 = json.loads((out / "records" / "gp_seed0.json").read_text())
    seed1 = json.loads((out / "records" / "gp_seed1.json").read_text())
    assert bm.record_run(seed0) == Path(seed0["run_dir"])
    stale = {**seed0, "run_dir": seed1["run_dir"]}  # seed 0's record, the folder now holds seed 1's run
    assert bm.record_run(stale) is None
    path = tmp_path / "gp_seed0.json"
    path.write_text(json.dumps(stale))
    assert bm.rescore(stale, path)["metrics"] == seed0["metrics"] != seed1["metrics"]
    assert json.loads(path.read_text()) == stale  # nothing rewritten
    assert bm.record_run({**seed0, "run_dir": str(tmp_path / "gone")}) is None


def test_records_hold_paths_relative_to_the_repository():
    """Committed records name data files and run folders relative to the repository, never a machine's paths
    (issue 32); a path outside the repository (a test's temporary folder) stays as given."""
    inside = bm.REPO_ROOT / "results" / "grid432" / "runs" / "gp" / "version_0"
    assert bm.portable(inside) == "results/grid432/runs/gp/version_0"
    assert bm.local("results/grid432/runs/gp/version_0") == inside
    assert bm.portable("/elsewhere/x.csv") == "/elsewhere/x.csv" and bm.local("/elsewhere/x.csv") == Path(
        "/elsewhere/x.csv"
    )
    committed = [p for p in (bm.REPO_ROOT / "results").rglob("*.json") if "runs" not in p.parts]

    def paths(doc):  # every "data" / "run_dir" string in a record, at any depth
        if isinstance(doc, dict):
            for k, v in doc.items():
                if k in ("data", "run_dir") and isinstance(v, str):
                    yield v
                yield from paths(v)
        elif isinstance(doc, list):
            for v in doc:
                yield from paths(v)

    absolute = [p for p in committed if any(v.startswith("/") for v in paths(json.loads(p.read_text())))]
    assert committed and not absolute, absolute[:3]


@pytest.mark.slow
def test_coverage_of_cached_gp_runs(bench, synthetic_csv):
    out, _ = bench
    cov = bm.coverage(out, ["gp", "rf"], progress=lambda _: None)
    assert list(cov.model) == ["gp", "gp"]  # the forest gives no interval
    data = pd.read_csv(synthetic_csv)
    for t in ("cBA_0", "cAIBN_0", "temp", "time"):
        inside = (
            cov[f"cov_{t}"] * cov.n_test
        )  # a coverage is a share of the held-out rows: a whole number of them
        assert np.allclose(inside, inside.round()), (t, list(inside))
        # an interval has a width, and a calibrated one is no wider than knowing nothing: a 90 % interval of the
        # target's own spread (~0.95 of its range for a uniform design; this small, quickly fitted GP is there for
        # cAIBN_0), with some slack; the stop time's median width may be 0: most runs end at the time limit, where
        # the interval is clipped to it
        span = data[t].max() - data[t].min()
        width = cov[f"width_{t}"]
        assert ((width > 0 if t != "time" else width >= 0) & (width < 1.2 * span)).all(), (
            t,
            list(width),
            span,
        )
    # a calibrated 90 % interval covers most held-out rows even on this small, quickly fitted GP
    assert cov[["cov_cBA_0", "cov_cAIBN_0", "cov_temp"]].to_numpy().mean() > 0.6
    full = cov.n_test - cov.n_early
    assert np.allclose(
        cov.cov_time * cov.n_test, cov.cov_time_early.fillna(0) * cov.n_early + cov.cov_time_full * full
    )
    text = (out / "coverage.md").read_text()
    assert "time (stopped early)" in text and "| gp | 2 |" in text


@pytest.mark.slow
def test_coverage_cli_without_interval_models_is_one_error_line(bench, capsys):
    from benchmarks import __main__ as cli

    out, _ = bench
    assert cli.main(["coverage", "--out", str(out), "--models", "rf"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {out}: no cached run of a model with intervals (rf)"]
    # a bad command line is one error line too (it used to be parsed outside the error handler)
    assert cli.main(["table", "--set", "trainer.max_epochs=1", "--bogus"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: unrecognized arguments: --bogus (see python -m benchmarks --help)"
    ]
    assert cli.main(["table", "--set", "trainer.max_epochs"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_learning_curve_keeps_models_run_earlier_in_the_same_folder(tmp_path):
    sizes = [40, 60]
    learning_curve(["rf"], sizes, [0], tmp_path, test_size=30, quick=True, progress=lambda _: None)
    frame = learning_curve(
        ["gp"],
        sizes,
        [0],
        tmp_path,
        test_size=30,
        quick=True,
        overrides={"model.nu": 1.5},
        progress=lambda _: None,
    )
    assert sorted(zip(frame.model, frame.train_rows, strict=True)) == [
        ("gp", 40),
        ("gp", 60),
        ("rf", 40),
        ("rf", 60),
    ]
    text = (tmp_path / "learning_curve.md").read_text()
    assert "| rf | 60 | 1 |" in text and "| gp | 40 | 1 |" in text
    assert "— overrides of the last run: model.nu=1.5" in text.splitlines()[0]
    assert (
        len(pd.read_csv(tmp_path / "records.csv")) == 4
        and (tmp_path / "learning_curve.png").stat().st_size > 0
    )


def test_noisy_learning_curve_draws_noise_into_every_file(tmp_path):
    from polyinv.schema import MMD_COLUMNS
    from polyinv.sim import lhs_design, simulate_many
    from polyinv.sim.io import read_metadata

    frame = learning_curve(
        ["rf"], [40], [0], tmp_path, test_size=30, quick=True, noise_chains=500, progress=lambda _: None
    )
    assert len(frame) == 1 and "noise of 500 chains" in (tmp_path / "learning_curve.md").read_text()
    for name, n, seed in (
        ("train_lhs40_noise500.parquet", 40, 40),
        ("test_lhs30_noise500.parquet", 30, 1_000_003),
    ):
        path = tmp_path / "data" / name
        noisy = pd.read_parquet(path)
        clean = simulate_many(lhs_design(n, seed=seed), progress=False)
        np.testing.assert_allclose(
            noisy[["cBA_0", "cAIBN_0", "temp", "time", "cBA_time"]],
            clean[["cBA_0", "cAIBN_0", "temp", "time", "cBA_time"]],
        )
        assert np.abs(noisy[list(MMD_COLUMNS)].to_numpy() - clean[list(MMD_COLUMNS)].to_numpy()).max() > 1e-3
        assert dict(read_metadata(path))["noise_chains"] == "500"


def test_every_benchmark_config_resolves():
    from polyinv.config import parse

    assert set(bm.DESCRIPTIONS) == set(bm.MODELS)
    kinds = {name: parse(["--config", str(bm._config_path(name))])[0]["model"]["kind"] for name in bm.MODELS}
    assert kinds["mlp"] == "mlp" and kinds["cnn"] == "cnn"
    assert kinds["gp"] == kinds["gp_noisy"] == "gaussian_process"


def test_regenerated_docs_keep_the_hand_written_part(tmp_path):
    """`python -m benchmarks docs` rewrites docs/benchmark.md but keeps the text from the hand-written marker on."""
    docs = tmp_path / "benchmark.md"
    hand = bm.HAND_WRITTEN + "\n\n## On a GPU\n\nMLP 46 s of training"
    docs.write_text("# Benchmark\n\nan old generated table\n\n" + hand + "\n")
    bm.write_docs(tmp_path / "results", docs)  # no records: the generated part is the header alone
    text = docs.read_text()
    assert (
        text.startswith("# Benchmark") and "an old generated table" not in text and text.endswith(hand + "\n")
    )
    bm.write_docs(tmp_path / "results", docs)
    assert docs.read_text() == text


@pytest.mark.slow
def test_a_table_on_two_dask_workers_records_what_one_machine_records(synthetic_csv, tmp_path):
    """The model × seed runs as chunks of a local cluster: the same records, in the same order. Both sides run
    on one BLAS thread, as each Dask worker does: the GP's kernel fit moved its R² by 0.007 between 1 and 2."""
    from threadpoolctl import threadpool_limits

    from polyinv.batch import Cluster

    def table(out, cluster=None):
        return bm.table(
            ["rf", "gp"],
            [0, 1],
            synthetic_csv,
            out,
            "s",
            quick=True,
            progress=lambda _: None,
            cluster=cluster,
        )

    with threadpool_limits(1):
        here = table(tmp_path / "here")
    there = table(tmp_path / "there", Cluster(workers=2))
    assert list(zip(there.model, there.seed, strict=True)) == list(zip(here.model, here.seed, strict=True))
    np.testing.assert_allclose(there["global_r2"], here["global_r2"], rtol=1e-9)
    assert len(list((tmp_path / "there" / "records").glob("*.json"))) == 4
