"""The single-model line of the README's quick start reaches its documented accuracy on the shipped data."""

from __future__ import annotations

import json

import pytest

from polyinv.cli import fit

#: The README's one-model line (configs/mlp.yaml: float64 L-BFGS on one CPU thread; shipped data, seed 42 = the
#: study's split): global R² 0.9949 on this machine, the same with 1, 2 or 4 torch threads and with AVX2 or
#: AVX-512 kernels (docs/benchmark.md, rounding).
DOCUMENTED_GLOBAL_R2 = 0.9949
#: Rounding perturbations of this fit (float64, 1/2/4 threads before the fit ran on one) moved it between 0.9913
#: and 0.9949, cAIBN_0 down to 0.985: a processor whose kernels sum in another order can land anywhere in that
#: band, so the test allows it and a little more.
MARGIN = 0.005


@pytest.mark.slow
def test_shipped_mlp_config_reaches_its_documented_accuracy(tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(
        2
    )  # the fit runs on one thread whatever the caller's setting (train.lbfgs_numerics)
    try:
        rc = fit.main(
            [
                "--config",
                "mlp.yaml",
                "--output.root",
                str(tmp_path),
                "--trainer.enable_progress_bar",
                "false",
                "--trainer.accelerator",
                "cpu",
                "--trust.refine",
                "none",
            ]
        )  # the refine check moves no metric
    finally:
        torch.set_num_threads(threads)
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "mlp" / "version_0" / "metrics.json").read_text())
    assert metrics["global"]["r2"] >= DOCUMENTED_GLOBAL_R2 - MARGIN
    assert min(m["r2"] for m in metrics["targets"].values()) >= 0.98
