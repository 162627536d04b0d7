#!/usr/bin/env bash
# Runs each fuzz target for the given number of seconds (default 30), seeding the corpus from the fixtures.
# Works on a stable toolchain: RUSTC_BOOTSTRAP lets it accept the -Z flags cargo-fuzz passes for sanitizers.
set -euo pipefail
seconds="${1:-30}"
# libFuzzer reads 0 as "forever": refuse it rather than run unbounded.
[ "$seconds" -gt 0 ] 2>/dev/null || { echo "usage: $0 [seconds > 0]" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
fixtures="$here/../crates/import/tests/fixtures"
mkdir -p corpus/ofx corpus/csv
cp -n "$fixtures"/*.ofx "$fixtures"/*.qfx corpus/ofx/ 2>/dev/null || true
# The csv target's first byte picks the mapping; seed each fixture under every mapping.
for file in "$fixtures"/*.csv; do
    for selector in 0 1 2 3 4; do
        target="corpus/csv/$(basename "$file").$selector"
        [ -e "$target" ] || { printf "\\x$(printf %02x "$selector")"; cat "$file"; } > "$target"
    done
done
for target in ofx csv; do
    echo "== fuzzing $target for ${seconds}s"
    cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536
done
