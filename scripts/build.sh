#!/usr/bin/env bash
# The one build of the workspace, shared by scripts/test.sh and scripts/demo.sh: every crate,
# the CLI binary and every test, in the one profile (release). Lints ride on it: the
# workspace's own crates go through clippy-driver with -D warnings (scripts/clippy-rustc), so
# clippy and missing_docs are enforced without a second build of the dependencies.
# `scripts/build.sh --run-tests` runs the tests of that same build.
set -euo pipefail
cd "$(dirname "$0")/.."
if clippy-driver -V >/dev/null 2>&1; then
    export RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/clippy-rustc"
else
    echo "warning: clippy-driver not found (rustup component add clippy): building without lints" >&2
fi
if [[ "${1:-}" == "--run-tests" ]]; then
    shift
    exec cargo test --release --workspace "$@"
fi
exec cargo test --release --workspace --no-run "$@"
