"""Resume (acceptance 5) and checkpoint re-evaluation.

A run stopped after N epochs continues from ``last.ckpt`` at epoch N in the same run folder and rewrites
its artefacts; ``best.ckpt`` loaded in a fresh process reproduces the run's test metrics and predictions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from polyinv.cli.fit import main

from tests.synthetic import REPO, fast_overrides

FIRST_EPOCHS = 3
MORE_EPOCHS = 2


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _scalar_values(event_files, tag: str) -> list[float]:
    values = []
    for event_file in sorted(event_files):
        acc = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            values += [e.value for e in acc.Scalars(tag)]
    return values


def _train_epochs(event_file: Path) -> list[int]:
    """The epoch number of every ``train/loss`` value in one event file (one per finished training epoch)."""
    acc = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    if "train/loss" not in tags:
        return []
    train_steps = [e.step for e in acc.Scalars("train/loss")]
    epoch_at = {e.step: int(e.value) for e in acc.Scalars("epoch")}
    return [epoch_at[s] for s in train_steps]


@pytest.fixture(scope="module")
def resumed(synthetic_csv, tmp_path_factory):
    """One run of FIRST_EPOCHS epochs without early stopping, then resumed to FIRST_EPOCHS + MORE_EPOCHS."""
    root = tmp_path_factory.mktemp("resume")
    # with validation rows: Lightning 2.6 resumes an end-of-epoch checkpoint of a run without them one epoch short
    args = [
        *fast_overrides(synthetic_csv, root, epochs=FIRST_EPOCHS),
        "--early_stopping.patience",
        "null",
        "--data.val_fraction",
        "0.1",
        "--checkpoint.monitor",
        "val/loss",
    ]
    assert main(["--config", str(REPO / "configs/mlp.yaml"), *args]) == 0
    run_dir = root / "mlp" / "version_0"
    first = {
        "last": _ckpt(run_dir / "last.ckpt"),
        "metrics_mtime": (run_dir / "metrics.json").stat().st_mtime_ns,
        "events": set((run_dir / "tensorboard").glob("events.out.tfevents.*")),
    }
    assert main(["--resume", str(run_dir), "--trainer.max_epochs", str(FIRST_EPOCHS + MORE_EPOCHS)]) == 0
    return root, run_dir, first


@pytest.mark.slow
def test_first_run_stops_after_n_epochs(resumed):
    _, _, first = resumed
    last = first["last"]
    assert last["epoch"] == FIRST_EPOCHS - 1  # Lightning counts epochs from 0
    steps_per_epoch = last["global_step"] // FIRST_EPOCHS
    assert steps_per_epoch > 0 and last["global_step"] == FIRST_EPOCHS * steps_per_epoch


@pytest.mark.slow
def test_resume_continues_at_epoch_n(resumed):
    root, run_dir, first = resumed
    # same run folder, no new version
    assert sorted(p.name for p in (root / "mlp").iterdir()) == ["version_0"]
    last = _ckpt(run_dir / "last.ckpt")
    steps_per_epoch = first["last"]["global_step"] // FIRST_EPOCHS
    assert last["epoch"] == FIRST_EPOCHS + MORE_EPOCHS - 1
    assert last["global_step"] == (FIRST_EPOCHS + MORE_EPOCHS) * steps_per_epoch
    # the resumed process trained only the MORE_EPOCHS missing epochs, numbered N, N+1
    new_events = set((run_dir / "tensorboard").glob("events.out.tfevents.*")) - first["events"]
    resumed_epochs = sorted(e for f in new_events for e in _train_epochs(f))
    assert resumed_epochs == list(range(FIRST_EPOCHS, FIRST_EPOCHS + MORE_EPOCHS))
    first_epochs = sorted(e for f in first["events"] for e in _train_epochs(f))
    assert first_epochs == list(range(FIRST_EPOCHS))
    # validation and training metrics are logged for every epoch, before and after the resume
    for key in ("val/r2_global", "train/r2_global", "train/r2/cAIBN_0"):
        assert len(_scalar_values(first["events"], key)) == FIRST_EPOCHS
        assert len(_scalar_values(new_events, key)) == MORE_EPOCHS
    # the artefacts are rewritten for the longer run
    assert (run_dir / "metrics.json").stat().st_mtime_ns > first["metrics_mtime"]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["epochs"] == FIRST_EPOCHS + MORE_EPOCHS
    assert "max_epochs: 5" in (run_dir / "config.yaml").read_text()


@pytest.mark.slow
def test_resume_without_last_ckpt_is_one_line_error(resumed, tmp_path, capsys):
    _, run_dir, _ = resumed
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    assert main(["--resume", str(copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last.ckpt" in err[0]


REEVALUATE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, pandas as pd
    from polyinv.inference import predict_file
    from polyinv.metrics import evaluate

    ckpt, data, saved = sys.argv[1:4]
    saved = pd.read_csv(saved)
    preds = predict_file(ckpt, data).iloc[saved["row"].to_numpy()]
    targets = [c[: -len("_pred")] for c in saved.columns if c.endswith("_pred")]
    y_pred = preds[targets].to_numpy(np.float64)
    y_true = pd.read_csv(data).iloc[saved["row"].to_numpy()][targets].to_numpy(np.float64)
    print(json.dumps({"metrics": evaluate(y_true, y_pred, targets), "pred": y_pred.tolist(), "targets": targets}))
    """
)


@pytest.mark.slow
def test_best_checkpoint_reproduces_metrics_in_fresh_process(resumed, synthetic_csv):
    _, run_dir, _ = resumed
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            REEVALUATE,
            str(run_dir / "best.ckpt"),
            str(synthetic_csv),
            str(run_dir / "predictions_test.csv"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads(proc.stdout.strip().splitlines()[-1])
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert again["metrics"]["targets"].keys() == saved["targets"].keys()
    for target, values in saved["targets"].items():
        for key, value in values.items():
            assert again["metrics"]["targets"][target][key] == pytest.approx(value, rel=1e-6, abs=1e-6), (
                target,
                key,
            )
    for key, value in saved["global"].items():
        assert again["metrics"]["global"][key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
    table = pd.read_csv(run_dir / "predictions_test.csv")
    expected = table[[f"{t}_pred" for t in again["targets"]]].to_numpy()
    np.testing.assert_allclose(np.asarray(again["pred"]), expected, rtol=1e-5, atol=1e-12)


def test_checkpoint_cadence_always_includes_the_final_epoch():
    from polyinv.train import _largest_divisor_at_most

    assert _largest_divisor_at_most(3000, 50) == 50
    assert _largest_divisor_at_most(800, 10) == 10
    assert _largest_divisor_at_most(3, 50) == 3
    assert _largest_divisor_at_most(7, 5) == 1
    assert _largest_divisor_at_most(1500, 40) == 30
