#!/usr/bin/env bash
# Runs one Tessera node on the embedded defaults: embedded Cfg in ./tessera-data, REST on
# 127.0.0.1:9100. No etcd needed. Extra arguments go to `tessera node`
# (e.g. scripts/run.sh --bind 127.0.0.1:9200).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cargo build --release --bin tessera
exec "${CARGO_TARGET_DIR:-target}/release/tessera" --data-dir "${TESSERA_DATA_DIR:-tessera-data}" node "$@"
