#!/usr/bin/env bash
# The test command: checks formatting, builds the workspace once with clippy and missing_docs
# enforced (scripts/build.sh), builds the Korean dictionary and lays out the encoder models
# (PyPI only), installs Debian's chromium for the search page's browser test, makes a Python
# venv with Qdrant's engine (qdrant-edge-py, PyPI) for the Qdrant parity tests and one with
# schemathesis (PyPI) to fuzz the HTTP API from its OpenAPI description, runs every test of
# the workspace in the one build profile (release), then the Python package's tests
# (scripts/python-tests.sh: `pip install ./python` into a venv, pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
# One build of the workspace and its tests (the CLI binary included), linted, reused below.
scripts/build.sh
HS_BUILT=1 scripts/fetch-ko-dic.sh
scripts/fetch-models.sh
scripts/fetch-browser.sh
scripts/fetch-qdrant-edge.sh
scripts/fetch-schemathesis.sh
# The Qdrant parity tests and the API fuzzing must run here, not skip.
export HYBRID_SEARCH_REQUIRE_EDGE=1
export HYBRID_SEARCH_REQUIRE_SCHEMATHESIS=1
rm -f target/schemathesis-summary.txt
scripts/build.sh --run-tests
# The Python package: built from the checkout into a venv, its pytest suite.
scripts/python-tests.sh
if [[ -f target/schemathesis-summary.txt ]]; then
    echo "schemathesis against the HTTP API (crates/cli/tests/openapi.rs):"
    sed -n '/SUMMARY/,$p' target/schemathesis-summary.txt
fi
