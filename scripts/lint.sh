#!/usr/bin/env bash
# clippy with -D warnings over every target as a check build of its own. CI does not need it:
# scripts/build.sh (run by scripts/test.sh) builds with the same lints enforced.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo clippy --release --workspace --all-targets -- -D warnings
