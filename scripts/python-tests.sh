#!/usr/bin/env bash
# The Python package's tests: a venv (target/python-venv) with the package built from the
# checkout (`pip install ./python`: maturin from PyPI builds crates/python in the release
# profile into target/, reusing what the workspace build compiled) and pytest, NumPy,
# langchain-core and llama-index-core from PyPI; then pytest on python/tests from the
# repository root (models/ and the Korean dictionary are found there). Run by scripts/test.sh
# after the workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/python-venv
if [[ ! -x $VENV/bin/python ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check \
  pytest==9.2.0 numpy==2.4.6 langchain-core==1.8.1 llama-index-core==0.14.25 \
  python-mecab-ko-dic==2.1.1.post2 pandas==3.1.1
# The same rustc wrapper as scripts/build.sh, so the workspace crates the wheel needs are not
# compiled again (a wrapper is part of each crate's fingerprint).
if clippy-driver -V >/dev/null 2>&1; then
  export RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/clippy-rustc"
fi
started=$(date +%s)
"$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps ./python
echo "python-tests: pip install ./python took $(( $(date +%s) - started )) s"
"$VENV/bin/python" -m pytest -q python/tests
