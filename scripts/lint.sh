#!/usr/bin/env bash
# clippy with -D warnings over every target (a check build of its own, so not part of CI's run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo clippy --release --workspace --all-targets -- -D warnings
