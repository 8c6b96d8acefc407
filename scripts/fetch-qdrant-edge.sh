#!/usr/bin/env bash
# Makes target/qdrant-edge-venv: a Python venv with qdrant-edge-py 0.9.0 from PyPI (Qdrant's
# segments in-process: named dense and sparse vectors, RRF and DBSF fusion), pinned by the
# wheel's sha256. The Qdrant parity tests (crates/qdrant/tests/edge_parity.rs) run their
# exported points and queries through it. Idempotent: does nothing when the venv imports the
# package already.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/qdrant-edge-venv
if [[ -x $VENV/bin/python ]] && $VENV/bin/python -c 'import qdrant_edge' 2>/dev/null; then
  exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
REQ=$(mktemp)
trap 'rm -f "$REQ"' EXIT
cat >"$REQ" <<'REQS'
qdrant-edge-py==0.9.0 \
    --hash=sha256:7bc734ea493d1f92e6b8af74bc68c4f903b2ca90593f899cd1b998cd12744da4
REQS
"$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes --only-binary=:all: -r "$REQ"
"$VENV/bin/python" -c 'import qdrant_edge' 
echo "fetch-qdrant-edge: $VENV has qdrant-edge-py $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("qdrant-edge-py"))')"
