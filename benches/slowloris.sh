#!/usr/bin/env bash
# Slow clients against `hybrid-search serve` (docs/benchmarks.md, "Slow clients"): a normal
# client's hybrid search latency while 0, 64 and 500 connections stall part way through a
# request body, and the server's memory. See benches/slowloris.py.
# Usage: benches/slowloris.sh INDEX [DATASET] [SECONDS]
#   INDEX: a SciFact collection built with all-MiniLM-L6-v2 (as for benches/serve-load.sh).
#   HS=... runs another build without building.
set -euo pipefail
cd "$(dirname "$0")/.."
INDEX=${1:?usage: benches/slowloris.sh INDEX [DATASET] [SECONDS]}
DATASET=${2:-../shared/data/scifact}
SECONDS_PER_PHASE=${3:-30}
if [[ -z "${HS:-}" ]]; then
  cargo build --release --quiet -p hybrid-search-cli --bin hybrid-search
fi
HS=${HS:-target/release/hybrid-search}
ulimit -n 4096
source benches/serve-copy.sh
serve_copy "$INDEX"
echo "server $URL (pid $PID); $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
python3 benches/slowloris.py "$URL" "$PID" scifact "$DATASET/queries.jsonl" "$SECONDS_PER_PHASE" 0 64 500
