#!/usr/bin/env bash
# On a machine with CUDA: the CUDA-marked tests, E1 (specs/mnist1d_cnn.trick) and
# specs/tiny_images.trick trained on the GPU in fp32 eager and with precision bf16 / fp16,
# compile (default and reduce_overhead: CUDA graphs) and, for tiny_images (2-D convolutions),
# channels_last; one line per figure: the median epoch seconds after the first (from the run
# folder's metrics.jsonl), the first epoch's seconds (compile's warm-up) and the test accuracy
# (summary.json). Then bench/peers.py, when it exists (its sides run on the CPU).
#
#     bash bench/gpu.sh            # EPOCHS=N to cut every run to N epochs (default: the spec's)
#
# Compiled runs use a fresh TORCHINDUCTOR_CACHE_DIR (the warm-up of a first run); the run
# folders are left in a temporary folder, printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    echo "bench/gpu.sh: torch sees no CUDA device here (torch.cuda.is_available() is False); run it on a machine with a GPU and a CUDA build of torch" >&2
    exit 2
fi

OUT=$(mktemp -d -t trick-gpu-XXXXXX)
export TORCHINDUCTOR_CACHE_DIR="$OUT/inductor-cache"
EPOCHS_SET=()
if [[ -n "${EPOCHS:-}" ]]; then EPOCHS_SET=(--set "train.epochs=$EPOCHS"); fi

python -c "import torch; print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}')"
echo "== pytest -m cuda"
python -m pytest -m cuda tests -q -p no:cacheprovider || echo "gpu.sh: some CUDA tests failed (above)"

# figure SPEC LABEL [--set ...]: one run, one line
figure() {
    local spec=$1 label=$2
    shift 2
    local dir="$OUT/$spec-$label"
    if ! trickc run "specs/$spec.trick" --device cuda --quiet --out "$dir" "${EPOCHS_SET[@]}" "$@" >"$dir.log" 2>&1; then
        printf '%-12s %-26s FAILED (see %s)\n' "$spec" "$label" "$dir.log"
        return 0
    fi
    python - "$dir" "$spec" "$label" <<'EOF'
import json, statistics, sys
from pathlib import Path
folder, spec, label = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
epochs = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
seconds = [e["seconds"] for e in epochs if "seconds" in e]
summary = json.loads((folder / "summary.json").read_text())
later = statistics.median(seconds[1:]) if len(seconds) > 1 else float("nan")
accuracy = summary["test"].get("accuracy", float("nan"))
print(f"{spec:12s} {label:26s} {later:7.3f} s/epoch (median after the first)  first epoch {seconds[0]:7.3f} s  "
      f"{len(seconds)} epochs  test accuracy {accuracy:.4f}  wall {summary['wall_seconds']:.1f} s")
EOF
}

echo "== training on cuda"
for spec in mnist1d_cnn tiny_images; do
    figure "$spec" eager-fp32
    figure "$spec" bf16 --set train.precision=bf16
    figure "$spec" fp16 --set train.precision=fp16
    figure "$spec" compile --set train.compile=true
    figure "$spec" compile-reduce_overhead --set train.compile=true --set train.compile.mode=reduce_overhead
    figure "$spec" compile+bf16 --set train.compile=true --set train.precision=bf16
done
figure tiny_images channels_last --set train.channels_last=true
figure tiny_images channels_last+bf16 --set train.channels_last=true --set train.precision=bf16
figure tiny_images channels_last+compile --set train.channels_last=true --set train.compile=true

if [[ -f bench/peers.py ]]; then
    echo "== bench/peers.py"
    python bench/peers.py || echo "gpu.sh: bench/peers.py failed (above)"
fi
echo "run folders: $OUT"
