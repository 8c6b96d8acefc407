#!/usr/bin/env bash
# The cost of a one-document HTTP write (docs/benchmarks.md, "One-document writes"): serves a
# copy of INDEX, POSTs WRITES single SciFact documents one at a time (new ids, each encoded by
# the collection's model) and reports each write's latency (p50, p95 over the writes after
# the first), how many times the server read tantivy's meta.json during one write (each
# reload of a BM25 reader and each writer opened reads it: strace on the server), and the
# server's peak RSS.
# Usage: benches/write-one.sh INDEX [WRITES] [BINARY]
#   INDEX: a SciFact collection built with all-MiniLM-L6-v2 (see benches/serve-load.sh).
#   BINARY: the hybrid-search binary to serve with (default target/release/hybrid-search), so
#   two builds can be compared side by side in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
INDEX=${1:?usage: benches/write-one.sh INDEX [WRITES] [BINARY]}
WRITES=${2:-20}
HS=${3:-target/release/hybrid-search}
command -v strace >/dev/null || { echo "write-one.sh needs strace (apt-get install strace)" >&2; exit 1; }
source benches/serve-copy.sh
serve_copy "$INDEX"
# One SciFact abstract per write, under an id the collection does not have.
doc() {
  python3 -c 'import json,sys; n=int(sys.argv[1]); line=open(sys.argv[2]).readlines()[n]; d=json.loads(line)
print(json.dumps([{"id": "write-one-%d" % n, "title": d["title"], "text": d["text"]}]))' "$1" ../shared/data/scifact/corpus.jsonl
}
post() {
  doc "$1" >"$WORK/body"
  curl -sf -o "$WORK/answer" -w '%{time_total}\n' -H 'content-type: application/json' \
    --data-binary @"$WORK/body" "$URL/collections/scifact/documents"
}
# One write under strace: the meta.json reads it caused.
strace -f -p "$PID" -e trace=openat -o "$WORK/trace" 2>/dev/null &
TRACER=$!
sleep 1
post 0 >/dev/null
sleep 0.5
kill "$TRACER"; wait "$TRACER" 2>/dev/null || true
READS=$(grep -c 'sparse/meta.json' "$WORK/trace" || true)
for i in $(seq 1 "$WRITES"); do post "$i"; done >"$WORK/times"
python3 - "$WORK/times" "$READS" "$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' /proc/$PID/status)" "$HS" <<'PY'
import json, statistics, sys
t = sorted(float(x) * 1000 for x in open(sys.argv[1]))
q = statistics.quantiles(t, n=20)
print(json.dumps({"binary": sys.argv[4], "writes": len(t), "p50_ms": round(statistics.median(t), 1),
                  "p95_ms": round(q[18], 1), "meta_json_reads_per_write": int(sys.argv[2]),
                  "server_peak_rss_mib": int(sys.argv[3])}))
PY
