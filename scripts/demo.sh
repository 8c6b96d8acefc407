#!/usr/bin/env bash
# The main job: builds the workspace (the same build as scripts/test.sh, so running both compiles
# everything once), the Korean dictionary and the encoder models, indexes
# SciFact and KorQuAD 1.0 dev from ../shared/data (BM25; KorQuAD also dense and hybrid with
# multilingual-e5-small run from its Q4_0 file), searches and evaluates them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
HS_BUILT=1 scripts/fetch-ko-dic.sh
scripts/fetch-models.sh
HS=./target/release/hybrid-search
DATA=../shared/data
mkdir -p data
rm -rf data/scifact data/korquad data/korquad-e5
$HS index --index data/scifact --dataset "$DATA/scifact"
$HS search --index data/scifact -k 5 "IL-6 levels predict mortality in sepsis"
$HS eval --index data/scifact --dataset "$DATA/scifact" --split test
$HS index --index data/korquad --dataset "$DATA/korquad-v1-dev/KorQuAD_v1.0_dev.json"
$HS search --index data/korquad -k 5 "임종석이 여의도 농민 폭력 시위를 주도한 혐의로 지명수배 된 날은?"
$HS eval --index data/korquad --dataset "$DATA/korquad-v1-dev/KorQuAD_v1.0_dev.json"
# Both legs (about 10 minutes of encoding on 2 cores): the same questions answered densely.
$HS index --index data/korquad-e5 --dataset "$DATA/korquad-v1-dev/KorQuAD_v1.0_dev.json" \
    --model models/multilingual-e5-small
$HS search --index data/korquad-e5 --mode dense -k 5 "임종석이 여의도 농민 폭력 시위를 주도한 혐의로 지명수배 된 날은?"
$HS eval --index data/korquad-e5 --dataset "$DATA/korquad-v1-dev/KorQuAD_v1.0_dev.json" --mode dense
# Hybrid, the default for a collection with a model: both legs fused, each hit explained.
$HS search --index data/korquad-e5 -k 3 --explain "임종석이 여의도 농민 폭력 시위를 주도한 혐의로 지명수배 된 날은?"
$HS eval --index data/korquad-e5 --dataset "$DATA/korquad-v1-dev/KorQuAD_v1.0_dev.json"
$HS verify --index data/korquad-e5
