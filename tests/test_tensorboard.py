"""TensorBoard (acceptance 6): a run's event files hold per-target validation metrics, losses, the learning
rate, the hparams with the real final metrics, and parity images; the real ``tensorboard`` server shows
the scalar tags over HTTP on a loopback port.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from polyinv.cli.fit import main
from polyinv.schema import TARGETS

from tests.synthetic import REPO, fast_overrides

EPOCHS = 2


@pytest.fixture(scope="module")
def tb_run(synthetic_csv, tmp_path_factory):
    """One short MLP run; returns (output root, run folder, accumulator over its event files)."""
    root = tmp_path_factory.mktemp("tb")
    args = [
        *fast_overrides(synthetic_csv, root, epochs=EPOCHS),
        "--data.val_fraction",
        "0.1",
    ]  # validation scalars too
    assert main(["--config", str(REPO / "configs/mlp.yaml"), *args]) == 0
    run_dir = root / "mlp" / "version_0"
    acc = EventAccumulator(
        str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0}
    )
    acc.Reload()
    return root, run_dir, acc


@pytest.mark.slow
def test_scalars_named_by_target(tb_run):
    _, _, acc = tb_run
    tags = set(acc.Tags()["scalars"])
    for target in TARGETS:
        assert f"val/r2/{target}" in tags
        assert f"val/mae/{target}" in tags
    assert {"train/loss", "val/loss", "val/r2_global", "train/r2_global"} <= tags
    assert any(tag.startswith("lr-") for tag in tags), sorted(tags)
    # one value per epoch (epoch-level compute(), not per batch; the sanity check is not logged)
    for tag in ("train/loss", "val/loss", f"val/r2/{TARGETS[0]}", f"val/mae/{TARGETS[-1]}"):
        assert len(acc.Scalars(tag)) == EPOCHS, tag
    values = [e.value for e in acc.Scalars("val/mae/temp")]
    assert len(set(values)) == EPOCHS  # a new value each epoch: the model changed between them


@pytest.mark.slow
def test_runs_without_validation_rows_show_per_target_training_metrics(synthetic_csv, tmp_path):
    """The shipped networks hold no validation rows: TensorBoard still shows per-target R² and MAE of the
    training rows every epoch (physical units, eval mode), which nothing monitors."""
    assert main(["--config", "mlp.yaml", *fast_overrides(synthetic_csv, tmp_path, epochs=3)]) == 0
    acc = EventAccumulator(str(tmp_path / "mlp" / "version_0" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert not any(tag.startswith("val/") for tag in tags)
    for target in TARGETS:
        values = [e.value for e in acc.Scalars(f"train/r2/{target}")]
        assert len(values) == 3 and len(acc.Scalars(f"train/mae/{target}")) == 3
    r2 = [e.value for e in acc.Scalars("train/r2/cBA_0")]
    assert r2[-1] > r2[0]  # L-BFGS steps fit the training rows


def test_hparams_hold_real_test_metrics(tb_run):
    _, run_dir, acc = tb_run
    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert "hp/test_r2_global" in metric_tags and "hp_metric" not in metric_tags
    assert {f"hp/test_r2/{t}" for t in TARGETS} <= metric_tags
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["model.kind"].string_value == "mlp"
    assert start.hparams["trainer.max_epochs"].number_value == EPOCHS

    metrics = json.loads((run_dir / "metrics.json").read_text())
    [logged] = acc.Scalars("hp/test_r2_global")
    assert logged.value == pytest.approx(metrics["global"]["r2"], abs=1e-6)
    for target in TARGETS:
        [logged] = acc.Scalars(f"hp/test_r2/{target}")
        assert logged.value == pytest.approx(metrics["targets"][target]["r2"], abs=1e-6)


def test_parity_images_per_target(tb_run):
    _, _, acc = tb_run
    assert set(acc.Tags()["images"]) >= {f"parity/{t}" for t in TARGETS}
    image = acc.Images(f"parity/{TARGETS[0]}")[0]
    assert image.width > 100 and image.height > 100 and image.encoded_image_string[:4] == b"\x89PNG"


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback only)
        return json.loads(response.read().decode())


@pytest.mark.slow
def test_tensorboard_server_serves_scalar_tags(tb_run, tmp_path):
    root, run_dir, _ = tb_run
    port = _free_loopback_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "tensorboard.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(root),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast",
            "false",
            "--reload_interval",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        tags, deadline = {}, time.monotonic() + 60
        run_name = run_dir.joinpath("tensorboard").relative_to(root).as_posix()
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "tensorboard.log").read_text()[-2000:]
            try:
                tags = _get_json(f"{base}/data/plugin/scalars/tags")
            except OSError:  # not listening yet
                tags = {}
            if tags.get(run_name):
                break
            time.sleep(0.5)
        assert run_name in tags, f"no scalars for {run_name} after 60 s: {tags}"
        served = set(tags[run_name])
        assert {f"val/r2/{t}" for t in TARGETS} <= served
        assert {"train/loss", "val/loss"} <= served
        assert "scalars" in _get_json(f"{base}/data/plugins_listing")
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        log.close()


def test_event_files_stay_in_the_run_folder(tb_run):
    root, run_dir, _ = tb_run
    events = sorted(Path(root).rglob("events.out.tfevents.*"))
    assert events and all(e.parent == run_dir / "tensorboard" for e in events)
