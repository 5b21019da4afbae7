#!/usr/bin/env bash
# Runs everything CI runs: formatting, clippy, and the whole test suite (unit, conformance on
# memory/embedded/etcd, etcd fault tests, CLI end to end). Tests start their own etcd processes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
