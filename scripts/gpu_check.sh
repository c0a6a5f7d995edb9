#!/usr/bin/env bash
# GPU checks, on a machine where torch sees a CUDA device (CI has none, so these run by hand):
# the GPU tests (tests/test_gpu.py), then configs/mlp.yaml and configs/cnn.yaml fitted on the
# shipped data on the GPU, and cnn.yaml once more on the CPU of the same machine for the speed ratio.
# Each fit's training seconds, device and test R² are printed and its run.json/metrics.json copied to OUT_DIR.
# Usage: bash scripts/gpu_check.sh [OUT_DIR]
set -uo pipefail
out=${1:-/tmp/polyinv_gpu}
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name(0))" || exit 1
status=0
python -m pytest tests/test_gpu.py -q -rA -p no:cacheprovider || status=1

fit() {  # fit NAME CONFIG ACCELERATOR: one fit of a shipped config on the shipped data
    local name=$1 config=$2 accelerator=$3 start run
    start=$(date +%s.%N)
    run=$(python -m polyinv fit --config "configs/$config.yaml" --trainer.accelerator "$accelerator" --trainer.devices 1 \
          --trainer.enable_progress_bar false --trust.refine none --output.root "$out/runs_$name" | tail -1) || { status=1; return; }
    run=${run#run: }
    cp "$run/run.json" "$out/${name}_run.json"; cp "$run/metrics.json" "$out/${name}_metrics.json"
    python - "$run" "$name" "$start" <<'EOF'
import json, sys, time
from pathlib import Path
run, name, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
info, metrics = json.loads((run / "run.json").read_text()), json.loads((run / "metrics.json").read_text())
seconds = info.get("train_seconds", info.get("seconds"))
print(f"{name}: device {info['device']}, training {seconds:.1f} s, whole command {time.time() - start:.1f} s, "
      f"test R² {metrics['global']['r2']:.4f}")
EOF
}
fit mlp_gpu mlp gpu
fit cnn_gpu cnn gpu
fit cnn_cpu cnn cpu
exit $status
