"""DDP (acceptance 7): ``python -m polyinv.fit`` with two CPU processes (gloo) finishes, makes one run folder,
and writes the metrics that the harness gives for its best.ckpt on the test split.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from polyinv.inference import predict_frame
from polyinv.metrics import evaluate
from polyinv.models import load_model
from polyinv.train import build_datamodule

from tests.synthetic import REPO, fast_overrides

TIMEOUT_S = 240
RUN_FILES = {
    "config.yaml",
    "best.ckpt",
    "last.ckpt",
    "metrics.json",
    "predictions_test.csv",
    "parity.png",
    "run.json",
    "tensorboard",
}


def _run_fit(args: list[str], cwd) -> subprocess.CompletedProcess:
    """Run the CLI in its own process group so that a hang takes the DDP worker down with it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"POLYINV_RUN_DIR", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"}
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "polyinv.fit", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"DDP run did not finish within {TIMEOUT_S} s; stderr tail:\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
def test_ddp_two_cpu_processes(synthetic_csv, tmp_path):
    root = tmp_path / "runs"
    work = tmp_path / "cwd"
    work.mkdir()
    args = [
        "--config",
        str(REPO / "configs/mlp.yaml"),
        *fast_overrides(synthetic_csv, root, epochs=2),
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
    ]
    proc = _run_fit(args, cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # one run folder, announced once, by rank 0 only; nothing written elsewhere
    assert sorted(p.name for p in (root / "mlp").iterdir()) == ["version_0"]
    run_dir = root / "mlp" / "version_0"
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == f"run: {run_dir}"
    assert sum(line.startswith("run: ") for line in lines) == 1
    assert sum(line.startswith("test split") for line in lines) == 1
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    assert list(work.iterdir()) == []

    # two processes really shared the epoch: each rank saw half the training rows
    info = json.loads((run_dir / "run.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    per_rank = math.ceil(info["rows"]["train"] / 2)
    batch = config["data"]["batch_size"] or per_rank  # 0: full batch
    last = torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1
    assert last["global_step"] == 2 * math.ceil(per_rank / batch)  # two epochs (more than one L-BFGS step)

    # metrics.json is the harness's verdict on best.ckpt over the test split
    dm = build_datamodule(config)
    dm.setup("fit")
    saved_preds = pd.read_csv(run_dir / "predictions_test.csv")
    np.testing.assert_array_equal(saved_preds["row"].to_numpy(), dm.test_idx)
    model = load_model(run_dir / "best.ckpt")
    targets = list(model.target_names)
    test = dm.test_frame
    again = evaluate(test[targets].to_numpy(np.float64), predict_frame(model, test), targets)
    saved = json.loads((run_dir / "metrics.json").read_text())
    for target in targets:
        for key, value in saved["targets"][target].items():
            assert again["targets"][target][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (target, key)
    for key, value in saved["global"].items():
        assert again["global"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
