#!/usr/bin/env bash
# Bounded fuzz runs of every cargo-fuzz target (fuzz/fuzz_targets/), each for SECONDS
# (default 60), starting from and adding to its committed corpus (fuzz/corpus/<target>/).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs cargo-fuzz (installed here if missing) and a nightly toolchain (libFuzzer's
# sanitizer flags); without nightly it stops with a message. A crash leaves its input under
# fuzz/artifacts/<target>/: add it to the corpus and fix the bug (the corpora are replayed
# by the ordinary suite, tests/tests/fuzz_corpora.rs). Prints, per target, the cases run.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(query_request query_string bulk_ndjson cfg_documents protocol_messages)
fi

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "error: cargo fuzz needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz >&2
fi

status=0
for target in "${targets[@]}"; do
  log=$(mktemp)
  # -max_len bounds inputs; -timeout makes a hang (one input past 10 s) a failure.
  if cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
    echo "$target: ok, $runs cases in ${seconds}s (corpus: $(ls "fuzz/corpus/$target" | wc -l) inputs)"
  else
    echo "$target: FAILED (see fuzz/artifacts/$target/)"
    tail -40 "$log"
    status=1
  fi
  rm -f "$log"
done
exit $status
