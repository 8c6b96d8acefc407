#!/usr/bin/env bash
# Filters at scale (docs/benchmarks.md, "Filters"): the scale benchmark's synthetic corpus with
# five fields per document (benches/src/bin/synth-corpus.rs --fields). Indexing cost of fields
# (sparse-only, the same documents with and without their fields: wall time, documents/s, peak
# RSS), then, up to MAX_HYBRID documents, a collection with both legs (supplied vectors, HNSW,
# all-MiniLM-L6-v2 as its model) searched by benches/src/bin/filter-speed.rs at selectivities
# 100% to 0.01%: hits returned against min(k, matches), recall@10 against exact filtered
# search, p50/p95 of filtered dense and hybrid searches; then, with scripts/fetch-qdrant-edge.sh's
# venv, the same filtered searches through Qdrant Edge (benches/qdrant_edge_filters.py).
#
#   benches/filters.sh 100000            # scratch space under target/filters/N
#   MAX_HYBRID=0 benches/filters.sh 1000000   # the indexing comparison only
#
# Needs GNU time (/usr/bin/time, Debian package `time`) and the models (scripts/fetch-models.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:?usage: benches/filters.sh DOCUMENTS}"
MAX_HYBRID="${MAX_HYBRID:-200000}"
OUT="target/filters/$N"
HS=target/release/hybrid-search
MODEL=models/all-MiniLM-L6-v2
cargo build --release -p hybrid-search-cli -p hybrid-search-benches --bins
rm -rf "$OUT/sparse" "$OUT/sparse-fields" "$OUT/hybrid" && mkdir -p "$OUT"
lscpu | grep -m1 "Model name" || true
nproc
# shellcheck source=benches/measure.sh
source benches/measure.sh

if [[ ! -f "$OUT/plain/corpus-text.jsonl" ]]; then
  measure "generate $N documents" target/release/synth-corpus "$N" "$OUT/plain"
fi
if [[ ! -f "$OUT/fields/corpus-text.jsonl" ]]; then
  measure "generate $N with fields" target/release/synth-corpus "$N" "$OUT/fields" 42 --fields
fi
rate() { echo "$N / $(cut -d' ' -f1 "$OUT/time.txt")" | bc; }
measure "index sparse-only, no fields" $HS index --index "$OUT/sparse" \
  --dataset "$OUT/plain/corpus-text.jsonl" --analyzer en
echo "  $(rate) documents/s"
measure "index sparse-only, five fields" $HS index --index "$OUT/sparse-fields" \
  --dataset "$OUT/fields/corpus-text.jsonl" --analyzer en
echo "  $(rate) documents/s"
du -sh "$OUT/sparse" "$OUT/sparse-fields"
if (( N <= MAX_HYBRID )); then
  measure "index hybrid with fields" $HS index --index "$OUT/hybrid" \
    --dataset "$OUT/fields/corpus.jsonl" --analyzer en --model "$MODEL"
  target/release/filter-speed "$OUT/hybrid" "$OUT/fields/corpus.jsonl" "$OUT/fields/queries"
  # The same filtered searches through Qdrant's engine, on the points `qdrant sync` would send.
  EDGE=target/qdrant-edge-venv/bin/python
  if [[ -x $EDGE ]]; then
    $HS qdrant export --index "$OUT/hybrid" --out "$OUT/export.jsonl" \
      --queries "$OUT/fields/queries" --model "$MODEL"
    "$EDGE" -u benches/qdrant_edge_filters.py "$OUT/export.jsonl" --queries 200
    rm -f "$OUT/export.jsonl"
  else
    echo "no $EDGE (scripts/fetch-qdrant-edge.sh): the Qdrant Edge run is skipped"
  fi
fi
