#!/usr/bin/env bash
# The load benchmark of `hybrid-search serve` (docs/benchmarks.md, "The HTTP service"):
#   1. the same hybrid searches one at a time through the library and through HTTP (overhead);
#   2. 8 HTTP clients for SECONDS, searches only;
#   3. 8 HTTP clients for SECONDS with one writer adding 10 SciFact documents per commit, back
#      to back;
#   4. the server's peak RSS (VmHWM) after 2 and after 3;
#   5. 8 clients for SECONDS that each spawn `hybrid-search search` per query (the CLI's rate).
# Usage: benches/serve-load.sh INDEX [DATASET] [SECONDS]
#   HS=... LOAD=... (the hybrid-search and serve-load binaries) run two builds side by side
#   without building.
#   INDEX: a SciFact collection built with all-MiniLM-L6-v2, e.g.
#     hybrid-search index --index data/scifact --dataset ../shared/data/scifact --model models/all-MiniLM-L6-v2
#   It is copied to a temporary data folder before the writer adds to it.
set -euo pipefail
cd "$(dirname "$0")/.."
INDEX=${1:?usage: benches/serve-load.sh INDEX [DATASET] [SECONDS]}
DATASET=${2:-../shared/data/scifact}
DURATION=${3:-60}
CLIENTS=8
if [[ -z "${HS:-}" || -z "${LOAD:-}" ]]; then
  cargo build --release --quiet -p hybrid-search-cli -p hybrid-search-benches --bin hybrid-search --bin serve-load
fi
HS=${HS:-target/release/hybrid-search}
LOAD=${LOAD:-target/release/serve-load}
source benches/serve-copy.sh
serve_copy "$INDEX"
echo "server $URL (pid $PID); $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"

"$LOAD" --url "$URL" --collection scifact --dataset "$DATASET" --library "$WORK/data/scifact"
rss() { echo "{\"server_peak_rss_mib\": $(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' /proc/$PID/status), \"after\": \"$1\"}"; }
"$LOAD" --url "$URL" --collection scifact --dataset "$DATASET" --clients $CLIENTS --seconds "$DURATION"
rss "searches only"
"$LOAD" --url "$URL" --collection scifact --dataset "$DATASET" --clients $CLIENTS --seconds "$DURATION" --writer
rss "searches with a writer"
kill -TERM "$PID"
wait "$PID" || true
"$HS" verify --index "$WORK/data/scifact" | tail -1
"$LOAD" --url "$URL" --collection scifact --dataset "$DATASET" --clients $CLIENTS --seconds "$DURATION" \
  --spawn "$HS" --index "$INDEX"
