#!/usr/bin/env bash
# Scale benchmark of live collections (docs/benchmarks.md, "Scale"): a synthetic collection of
# N documents with supplied 384-d vectors (benches/src/bin/synth-corpus.rs), indexed sparse-only
# and with both legs (all-MiniLM-L6-v2 encodes the queries and any document without a vector);
# index time and peak RSS, size on disk, search p50/p95 per mode, and `add` of 1 and 1,000
# documents and `delete` of 1 (whole process, model loaded; wall time and bytes written).
#
#   benches/scale.sh 1000000        # scratch space under target/scale/N (about 4.5 GB at 1M)
#
# Needs GNU time (/usr/bin/time, Debian package `time`) and the models (scripts/fetch-models.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:?usage: benches/scale.sh DOCUMENTS}"
OUT="target/scale/$N"
HS=target/release/hybrid-search
MODEL=models/all-MiniLM-L6-v2
cargo build --release -p hybrid-search-cli -p hybrid-search-benches --bins
# The generated data is deterministic: reuse it when present; the collections are rebuilt.
rm -rf "$OUT/sparse" "$OUT/hybrid" && mkdir -p "$OUT"
lscpu | grep -m1 "Model name" || true
nproc

# shellcheck source=benches/measure.sh
source benches/measure.sh

if [[ ! -f "$OUT/data/queries/qrels/test.tsv" ]]; then
  measure "generate $N documents" target/release/synth-corpus "$N" "$OUT/data"
fi
measure "index sparse-only" $HS index --index "$OUT/sparse" --dataset "$OUT/data/corpus-text.jsonl" --analyzer en
measure "index hybrid (supplied vectors)" $HS index --index "$OUT/hybrid" --dataset "$OUT/data/corpus.jsonl" \
  --analyzer en --model "$MODEL"
du -sh "$OUT/sparse" "$OUT/hybrid" "$OUT/hybrid/sparse" "$OUT/hybrid/dense"
target/release/hybrid-speed "$OUT/hybrid" "$OUT/data/queries" test
for i in 1 2 3; do
  measure "add 1 document (run $i)" $HS add --index "$OUT/hybrid" --model "$MODEL" "$OUT/data/add-1.jsonl"
done
measure "add 1,000 documents" $HS add --index "$OUT/hybrid" --model "$MODEL" "$OUT/data/add-1000.jsonl"
for i in 1 2 3; do
  measure "delete 1 document (run $i)" $HS delete --index "$OUT/hybrid" "d$((i * 7))"
done
measure "verify" $HS verify --index "$OUT/hybrid"
cat "$OUT/last.out"
