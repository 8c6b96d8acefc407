#!/usr/bin/env bash
# The engine's encoding speed beside PyTorch's, in one run on the same texts: for
# all-MiniLM-L6-v2 and multilingual-e5-small, passages per second over the first PASSAGES
# SciFact documents (batch 32) and the median latency of one query over the first QUERIES test
# queries, for the engine (`encode-speed`, each weight format in FORMATS) and for
# sentence-transformers on torch (float32; e5's packed Q4_0 weights dequantised, so both run
# the same numbers), and the engine from Python (`hybrid_search.Encoder`, int8) when
# target/python-venv exists (scripts/python-tests.sh). Not part of the tests or CI: it downloads torch (about 3 GB with its
# CUDA wheels, which the CPU run does not use) into target/peer-venv on first use.
#
#   scripts/peer-speed.sh [PASSAGES=500] [QUERIES=50]
#   THREADS=2 FORMATS="f32 int8" ROUNDS=1 scripts/peer-speed.sh
#
# Needs the models (scripts/fetch-models.sh) and ../shared/data/scifact. With ROUNDS=2 each
# measurement is taken twice, alternating engine and peer, and the table shows the better one.
set -euo pipefail
cd "$(dirname "$0")/.."

PASSAGES=${1:-500}
QUERIES=${2:-50}
THREADS=${THREADS:-2}
FORMATS=${FORMATS:-"f32 int8"}
ROUNDS=${ROUNDS:-1}
BATCH=32
DATA=../shared/data/scifact
VENV=target/peer-venv

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import torch, sentence_transformers" 2>/dev/null; then
  echo "peer-speed: setting up $VENV (torch and sentence-transformers from PyPI)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet "torch==2.15.0" "sentence-transformers==6.2.0" safetensors numpy
fi
for model in models/all-MiniLM-L6-v2 models/multilingual-e5-small; do
  [[ -d $model ]] || { echo "peer-speed: $model is missing; run scripts/fetch-models.sh" >&2; exit 1; }
done
[[ -f $DATA/corpus.jsonl ]] || { echo "peer-speed: $DATA is missing" >&2; exit 1; }

cargo build --quiet --release -p hybrid-search-benches --bin encode-speed
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); $(nproc) CPUs; flags: $(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq "$ROUNDS"); do
  for model in models/all-MiniLM-L6-v2 models/multilingual-e5-small; do
    name=$(basename "$model")
    line=$("$VENV/bin/python" scripts/peer_speed.py "$model" "$DATA" "$PASSAGES" "$BATCH" "$QUERIES" "$THREADS")
    echo "round $round: $line" >&2
    echo "$name pytorch $(sed -E 's/.*passages\/s=([0-9.]+) query_median_ms=([0-9.]+).*/\1 \2/' <<<"$line")" >>"$results"
    # The engine from Python (the hybrid_search package, int8), when its venv is there.
    if [[ -x target/python-venv/bin/python ]]; then
      line=$(target/python-venv/bin/python scripts/peer_speed.py "$model" "$DATA" "$PASSAGES" "$BATCH" "$QUERIES" "$THREADS" hybrid_search)
      echo "round $round: $line" >&2
      echo "$name python-int8 $(sed -E 's/.*passages\/s=([0-9.]+) query_median_ms=([0-9.]+).*/\1 \2/' <<<"$line")" >>"$results"
    fi
    for format in $FORMATS; do
      line=$(./target/release/encode-speed "$model" "$format" "$PASSAGES" "$BATCH" "$QUERIES")
      echo "round $round: $line" >&2
      echo "$name $format $(sed -E 's/.*= ([0-9.]+) passages\/s.*query median ([0-9.]+) ms.*/\1 \2/' <<<"$line")" >>"$results"
    done
  done
done

# Best of the rounds per (model, runner), then the ratios to PyTorch.
python3 - "$results" "$PASSAGES" "$QUERIES" "$THREADS" <<'EOF'
import sys
path, passages, queries, threads = sys.argv[1:5]
best = {}
for line in open(path):
    model, runner, rate, median = line.split()
    rate, median = float(rate), float(median)
    old = best.get((model, runner))
    best[(model, runner)] = (max(rate, old[0]), min(median, old[1])) if old else (rate, median)
print(f"\n{passages} SciFact passages (batch 32), {queries} queries one at a time, {threads} threads\n")
print("| model | runner | passages/s | vs PyTorch | query median ms | vs PyTorch |")
print("|---|---|---|---|---|---|")
for (model, runner), (rate, median) in best.items():
    peer = best.get((model, "pytorch"))
    r1 = f"{rate / peer[0]:.2f}x" if peer else ""
    r2 = f"{peer[1] / median:.2f}x" if peer else ""
    print(f"| {model} | {runner} | {rate:.1f} | {r1} | {median:.1f} | {r2} |")
EOF
