#!/usr/bin/env bash
# Fuzzes every target in fuzz/Cargo.toml for SECONDS each (default 20), one after another, each
# starting from its committed seeds (fuzz/seeds/<target>) plus whatever fuzz/corpus/<target>
# already holds (git-ignored; new inputs are added there). Exits non-zero if any target crashes,
# fails an assertion, times out or runs out of memory; the input is saved under
# fuzz/artifacts/<target>/ and can be replayed with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/crash-...
#
# Usage: fuzz/run.sh [SECONDS]
#   FUZZ_SANITIZER=address fuzz/run.sh 60   (default: none; the parsers hold no unsafe code, and
#                                             without ASan the build is a third faster)
#   FUZZ_TARGETS="ws_frame config" fuzz/run.sh   (a subset)
#
# Runs on the stable toolchain: cargo-fuzz needs nightly-only rustc flags, which
# RUSTC_BOOTSTRAP=1 allows. Installs cargo-fuzz when it is missing (about a minute).
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-20}"
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
sanitizer="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"

echo "== building fuzz targets (sanitizer: $sanitizer)"
build_start=$(date +%s)
cargo fuzz build -s "$sanitizer"
echo "   built in $(( $(date +%s) - build_start )) s"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
printf '%-20s %12s %8s %6s  %s\n' target executions corpus secs result
for t in $targets; do
  mkdir -p "corpus/$t" "seeds/$t"
  log="$logs/$t.log"
  start=$(date +%s)
  if cargo fuzz run -s "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed+=("$t")
  fi
  took=$(( $(date +%s) - start ))
  # A run that failed early (e.g. a build error) has neither line.
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1 || true)
  corp=$( (grep -oE 'corp: [0-9]+' "$log" || true) | tail -n 1 | cut -d' ' -f2)
  printf '%-20s %12s %8s %6s  %s\n' "$t" "${runs:-?}" "${corp:-?}" "$took" "$result"
  if [ "$result" = FAILED ]; then
    # The panic message, the failing input and where it was saved.
    if grep -qE "panicked at|ERROR: libFuzzer" "$log"; then
      grep -E -A 12 "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | head -n 60 >&2
    else
      tail -n 40 "$log" >&2
    fi
  fi
done

total=$(echo $targets | wc -w)
echo "fuzz: $(( total - ${#failed[@]} )) passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
