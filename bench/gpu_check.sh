#!/usr/bin/env bash
# The GPU checks, in one go (fits in 10 minutes on one GPU); results under bench/results/:
#   1. the backend benchmark (FastLM against lm-eval's HFLM) on a Pythia-1B-shaped model in bf16,
#      with MFU against the matmul peak this script measures on the card  -> backends_gpu.md
#   2. `harness run` of two tiny models sharing one GPU (fractional placement): how the replicas
#      were placed, their GPU shares, the busy fraction, and the scores     -> gpu_check.md
# Usage: bash bench/gpu_check.sh   (PYTHON=... to use another interpreter than .venv/bin/python)
# Nothing is downloaded: the models are made on the spot with random weights.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
RESULTS=bench/results
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
mkdir -p "$RESULTS"

if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device visible to $PYTHON; nothing measured" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$WORK/gpu.txt"

echo "== 1. backends on a Pythia-1B-shaped model, bf16"
timeout 420 "$PYTHON" bench/bench_backends.py --model pythia1b --device cuda --dtype bfloat16 \
  --batch-size 32 --repeats 2 --out "$RESULTS/backends_gpu.md"

echo "== 2. two tiny models sharing one GPU"
"$PYTHON" - "$WORK" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, ".")
from tests import tiny
root = Path(sys.argv[1])
tokenizer = tiny.build_tokenizer()
tiny.build_model(root / "models" / "tiny-a", tokenizer, hidden=64, layers=2, seed=1)
tiny.build_model(root / "models" / "tiny-b", tokenizer, hidden=128, layers=2, seed=2)
tiny.build_tasks(root / "tasks", n_docs=48)
EOF
timeout 150 "$PYTHON" -m harness run --models "$WORK/models/tiny-a,$WORK/models/tiny-b" \
  --tasks tiny_ppl,tiny_mc,tiny_gen --include-path "$WORK/tasks" --device cuda --docs-per-shard 4 \
  --out "$WORK/run" --no-analyze 2>&1 | tail -25 | tee "$WORK/run.log"

"$PYTHON" - "$WORK" "$RESULTS/gpu_check.md" <<'EOF'
import json, sys, datetime
from pathlib import Path
import pandas as pd
work, out = Path(sys.argv[1]), Path(sys.argv[2])
manifest = json.loads((work / "run" / "manifest.json").read_text())
starts = [e for e in manifest.get("events", []) if e.get("event") == "replica_ready"]
lines = [
    "# GPU check: two tiny models sharing one GPU", "",
    f"Produced by `bash bench/gpu_check.sh` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC.",
    f"GPU: {(work / 'gpu.txt').read_text().strip()}", "",
    f"Status: {manifest['status']}; shards: {len(manifest['shards'])}; "
    f"timing: {json.dumps(manifest.get('timing', {}))}", "",
    "Replicas (model -> measured facts, placement):", "", "```",
    json.dumps(manifest.get("replicas", {}), indent=1)[:4000], "```", "",
    "Placement events:", "", "```", json.dumps(starts or manifest.get("events", [])[:20], indent=1)[:4000], "```", "",
    "Scores:", "", "```", pd.read_parquet(work / "run" / "scores.parquet")
    .pivot_table(index="model", columns=["task", "metric"], values="value").round(4).to_string(), "```", "",
    "Backend benchmark (bf16, Pythia-1B shape): see `backends_gpu.md`.",
]
out.write_text("\n".join(lines) + "\n")
print(f"wrote {out}")
EOF
