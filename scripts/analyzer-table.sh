#!/usr/bin/env bash
# Measures analyzer settings with the project's own `eval`: prints one Markdown table row per
# setting (nDCG@10, Recall@100, MRR@10). Usage: scripts/analyzer-table.sh [scifact|korquad|cranfield]...
set -euo pipefail
cd "$(dirname "$0")/.."
HS=./target/release/hybrid-search
DATA=../shared/data
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
NORI="EP,EF,EC,ETN,ETM,IC,JKS,JKC,JKG,JKO,JKB,JKV,JKQ,JX,JC,MAG,MAJ,MM,SP,SSC,SSO,SC,SE,XPN,XSA,XSN,XSV,UNA,NA,VSV"

row() { # dataset path split label args...
  local name=$1 path=$2 split=$3 label=$4; shift 4
  rm -rf "$WORK/c"
  $HS index --index "$WORK/c" --dataset "$path" "$@" 2>/dev/null
  $HS eval --index "$WORK/c" --dataset "$path" --split "$split" --json |
    python3 -c "import json,sys; r=json.load(sys.stdin); print(f'| $name | $label | {r[\"ndcg@10\"]:.4f} | {r[\"recall@100\"]:.4f} | {r[\"mrr@10\"]:.4f} |')"
}

echo "| dataset | settings | nDCG@10 | Recall@100 | MRR@10 |"
echo "|---|---|---|---|---|"
for set in "${@:-scifact korquad cranfield}"; do
  case $set in
  scifact)
    S=$DATA/scifact
    row SciFact "$S" test "auto (default: extended stop words, stemming)"
    row SciFact "$S" test "en" --analyzer en
    row SciFact "$S" test "no stemming" --no-stem
    row SciFact "$S" test "Lucene stop words" --stop-words lucene
    row SciFact "$S" test "no stop words" --stop-words none
    ;;
  korquad)
    K=$DATA/korquad-v1-dev/KorQuAD_v1.0_dev.json
    row KorQuAD "$K" test "auto (default: decompound none, nori tags, bigram weight 0.5)"
    row KorQuAD "$K" test "ko" --analyzer ko
    row KorQuAD "$K" test "decompound mixed" --decompound mixed
    row KorQuAD "$K" test "decompound discard" --decompound discard
    row KorQuAD "$K" test "bigram field off" --ngram-weight 0
    row KorQuAD "$K" test "bigram weight 0.25" --ngram-weight 0.25
    row KorQuAD "$K" test "bigram weight 1.0" --ngram-weight 1
    row KorQuAD "$K" test "no stop tags" --stop-tags ""
    row KorQuAD "$K" test "nori tags + VCP,VCN,VX,NNB" --stop-tags "$NORI,VCP,VCN,VX,NNB"
    ;;
  cranfield)
    row Cranfield "$DATA/cranfield" test "auto (default)"
    row Cranfield "$DATA/cranfield" test "no stemming" --no-stem
    ;;
  esac
done
