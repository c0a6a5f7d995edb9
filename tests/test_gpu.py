"""Networks trained on a GPU (skipped where torch sees no CUDA device, as on CI).

A model trained on the GPU must learn as well as on the CPU, and its files must not tie it to the GPU:
``predict`` and ``--resume`` run in a process that sees no CUDA device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from polyinv.schema import TARGETS

from tests.cli.test_cli import fit_quietly
from tests.synthetic import REPO, fast_overrides

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

EPOCHS = {"mlp.yaml": 40, "cnn.yaml": 40}  # 160 synthetic rows: R² 0.67 and 0.45 on the CPU


def _cpu_only(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "polyinv", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )


@pytest.mark.parametrize("config", sorted(EPOCHS))
def test_gpu_run_learns_as_on_cpu_and_its_files_run_without_a_gpu(config, synthetic_csv, tmp_path):
    runs = {}
    for accelerator in ("gpu", "cpu"):
        args = [
            "--config",
            str(REPO / "configs" / config),
            *fast_overrides(synthetic_csv, tmp_path / accelerator, epochs=EPOCHS[config]),
            "--trainer.accelerator",
            accelerator,
        ]
        runs[accelerator], _ = fit_quietly(args)
    gpu, cpu = runs["gpu"], runs["cpu"]
    assert json.loads((gpu / "run.json").read_text())["device"].startswith("cuda")
    assert json.loads((cpu / "run.json").read_text())["device"] == "cpu"
    r2 = {k: json.loads((v / "metrics.json").read_text())["global"]["r2"] for k, v in runs.items()}
    assert r2["gpu"] > 0.3 and abs(r2["gpu"] - r2["cpu"]) < 0.1, r2  # float32 sums differ by device

    # the model file holds CPU tensors only
    state = torch.load(gpu / "best.ckpt", weights_only=True)["state_dict"]
    assert all(t.device.type == "cpu" for t in state.values())

    # predict in a process without a GPU reproduces the run's own test predictions
    out = tmp_path / "pred.csv"
    done = _cpu_only(["predict", "--ckpt", str(gpu), "--input", str(synthetic_csv), "--output", str(out)])
    assert done.returncode == 0, done.stderr
    test = pd.read_csv(gpu / "predictions_test.csv")
    pred = pd.read_csv(out).iloc[test["row"]]
    for t in TARGETS:
        np.testing.assert_allclose(pred[t].to_numpy(), test[f"{t}_pred"].to_numpy(), rtol=1e-4, err_msg=t)

    # and training continues there from the GPU run's last.ckpt
    done = _cpu_only(
        [
            "fit",
            "--resume",
            str(gpu),
            "--trainer.max_epochs",
            str(EPOCHS[config] + 5),
            "--trainer.accelerator",
            "cpu",
        ]
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((gpu / "run.json").read_text())["device"] == "cpu"
