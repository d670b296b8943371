#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for SECONDS each (default 60) and prints the executions of
# each. Needs cargo-fuzz (`cargo install cargo-fuzz`); works on a stable toolchain through
# RUSTC_BOOTSTRAP=1 (the sanitizer and coverage flags are nightly-only). See fuzz/README.md.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# New inputs go to fuzz/target/work/<target> (not committed); the committed corpus
# fuzz/corpus/<target> is read only. A crash leaves its input in fuzz/artifacts/<target>/ and
# makes the script exit non-zero after the other targets ran.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
# Release build with debug assertions and overflow checks: an overflow on hostile input is a bug.
FLAGS=(-O -a)

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo fuzz list)
fi
cargo fuzz build "${FLAGS[@]}"

LOGS="fuzz/target/logs"
mkdir -p "$LOGS"
failed=()
summary=()
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/target/work/$t" "fuzz/corpus/$t"
    echo "== $t: ${SECONDS_PER_TARGET}s" >&2
    status=ok
    cargo fuzz run "${FLAGS[@]}" "$t" "fuzz/target/work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -print_final_stats=1 >"$LOGS/$t.log" 2>&1 || status=CRASH
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$LOGS/$t.log" | tail -n 1 | cut -d' ' -f2)
    summary+=("$(printf '%-16s %-6s %12s execs  cov %s' "$t" "$status" "${runs:-?}" "${cov:-?}")")
    if [ "$status" != ok ]; then
        failed+=("$t")
        grep -m1 -A3 'panicked at\|ERROR: AddressSanitizer\|ERROR: libFuzzer' "$LOGS/$t.log" >&2 || true
        grep 'Test unit written to' "$LOGS/$t.log" >&2 || true
    fi
done
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]} (logs in $LOGS, inputs in fuzz/artifacts/)" >&2
    exit 1
fi
