#!/usr/bin/env bash
# The Python package beside the Rust library, in one run on one collection (docs/benchmarks.md,
# "Python"): the library's own per-mode latency (hybrid-speed) and encoding speed
# (encode-speed), then benches/python_speed.py through `hybrid_search` (latency per mode,
# search_batch against single calls, BM25 queries/s against bm25s 0.3.16, 1 against 2 threads,
# Encoder.encode passages/s).
#
#   benches/python-speed.sh COLLECTION [DATASET=../shared/data/scifact]
#
# COLLECTION: a SciFact collection with a dense leg (hybrid-search index --dataset
# ../shared/data/scifact --model all-MiniLM-L6-v2). Uses target/python-venv (made by
# scripts/python-tests.sh, which installs the package) and adds bm25s to it.
set -euo pipefail
cd "$(dirname "$0")/.."
COLLECTION="${1:?usage: benches/python-speed.sh COLLECTION [DATASET]}"
DATA="${2:-../shared/data/scifact}"
VENV=target/python-venv
[[ -x $VENV/bin/python ]] || scripts/python-tests.sh
"$VENV/bin/pip" install -q --disable-pip-version-check bm25s==0.3.16
# The workspace's one build (scripts/build.sh's), so nothing is compiled with other features.
scripts/build.sh --quiet
lscpu | grep -m1 "Model name" || true
nproc
MODEL=$("$VENV/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['dense']['model']['path'])" "$COLLECTION/manifest.json")
echo "== Rust library (hybrid-speed, encode-speed)"
target/release/hybrid-speed "$COLLECTION" "$DATA" test
RAYON_NUM_THREADS=$(nproc) target/release/encode-speed "$MODEL" int8 500 32 50
echo "== Python (hybrid_search)"
"$VENV/bin/python" benches/python_speed.py "$COLLECTION" "$DATA" --passages 500
