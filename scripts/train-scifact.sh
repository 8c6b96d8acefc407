#!/usr/bin/env bash
# Reproduces docs/benchmarks.md "Training" on SciFact: fine-tunes all-MiniLM-L6-v2 on the train
# split (in-batch + BM25 hard negatives), indexes the corpus with it, evaluates dense and hybrid
# on the test split, then trains a cross-encoder reranker and evaluates hybrid + rerank. About
# 75 minutes on 2 cores (each training about 15-20 minutes, each SciFact index about 10).
# Outputs go under data/train/ (git-ignored) and are rebuilt on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-ko-dic.sh
scripts/fetch-models.sh
scripts/build.sh
HS=./target/release/hybrid-search
DATA=../shared/data/scifact
OUT=data/train
rm -rf "$OUT"
mkdir -p "$OUT"

# A BM25 collection of the corpus to mine hard negatives from (about 30 s).
$HS index --index "$OUT/bm25" --dataset "$DATA"

# Dense: one shared encoder, one BM25 hard negative per query, 1 epoch of 29 steps.
$HS train-dense --base models/all-MiniLM-L6-v2 --dataset "$DATA" --split train \
    --out "$OUT/minilm-scifact" --index "$OUT/bm25" --hard-negatives 1 \
    --batch-size 32 --epochs 1 --lr 5e-5 --max-passage-len 192
$HS index --index "$OUT/sf-ft" --dataset "$DATA" --model "$OUT/minilm-scifact" \
    --long-text truncate --vectors exact
$HS eval --index "$OUT/sf-ft" --dataset "$DATA" --model "$OUT/minilm-scifact" --mode dense
$HS eval --index "$OUT/sf-ft" --dataset "$DATA" --model "$OUT/minilm-scifact"

# Reranker. How much it counts (--rerank-weight) is chosen without the test split: every 8th
# query id of the train split (101 queries) is held out as "dev", the reranker trains on the
# other 708, and the weight with the best dev nDCG@10 is used on the test split.
SPLIT="$OUT/scifact-split"
mkdir -p "$SPLIT/qrels"
ln -s "$(realpath "$DATA/corpus.jsonl")" "$SPLIT/corpus.jsonl"
ln -s "$(realpath "$DATA/queries.jsonl")" "$SPLIT/queries.jsonl"
tail -n +2 "$DATA/qrels/train.tsv" | cut -f1 | sort -nu | awk 'NR % 8 == 0' > "$OUT/dev-ids"
awk -F'\t' -v dir="$SPLIT/qrels" '
    FNR == NR { dev[$1] = 1; next }
    FNR == 1 { print > (dir "/train.tsv"); print > (dir "/dev.tsv"); next }
    { print > (dir "/" ($1 in dev ? "dev" : "train") ".tsv") }' "$OUT/dev-ids" "$DATA/qrels/train.tsv"

# 3 BM25 hard negatives per query, pairs cut to 128 tokens, the head at 20x the rate (default).
$HS train-reranker --base models/all-MiniLM-L6-v2 --dataset "$SPLIT" --split train \
    --out "$OUT/reranker" --index "$OUT/bm25" --hard-negatives 3 \
    --batch-size 16 --lr 1e-4 --max-len 128
# Reranking the top 20 of the fine-tuned hybrid: dev nDCG@10 for each weight (0 = first stage).
best=0 best_ndcg=-1
for w in 0 0.1 0.2 0.3 0.5 1; do
    ndcg=$($HS eval --index "$OUT/sf-ft" --dataset "$SPLIT" --split dev \
        --model "$OUT/minilm-scifact" --rerank "$OUT/reranker" --rerank-weight "$w" --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["ndcg@10"])')
    echo "dev: --rerank-weight $w nDCG@10 $ndcg"
    if python3 -c "import sys; sys.exit(not $ndcg > $best_ndcg)"; then best=$w best_ndcg=$ndcg; fi
done
echo "chosen on dev: --rerank-weight $best"
$HS eval --index "$OUT/sf-ft" --dataset "$DATA" --model "$OUT/minilm-scifact" \
    --rerank "$OUT/reranker" --rerank-depth 20 --rerank-weight "$best"
$HS eval --index "$OUT/sf-ft" --dataset "$DATA" --model "$OUT/minilm-scifact" \
    --rerank "$OUT/reranker" --rerank-depth 20 --rerank-weight 1
