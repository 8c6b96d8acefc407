#!/usr/bin/env bash
# The test command: builds the Korean dictionary (PyPI only), then runs every test, lint and
# format check of the workspace in the one build profile (release).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-ko-dic.sh
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
