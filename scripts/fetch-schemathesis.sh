#!/usr/bin/env bash
# Makes target/schemathesis-venv: a Python venv with schemathesis 4.32.5 from PyPI (the
# versions in scripts/schemathesis-requirements.txt). The HTTP API's fuzz test
# (crates/cli/tests/openapi.rs) runs it against a server on a fixture collection, driven by the
# server's own OpenAPI description. Idempotent: does nothing when the venv has that version.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/schemathesis-venv
VERSION=4.32.5
if [[ -x $VENV/bin/st ]] && [[ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" == "$VERSION" ]]; then
  exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check --only-binary=:all: \
    -r scripts/schemathesis-requirements.txt
echo "fetch-schemathesis: $VENV has schemathesis $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))')"
