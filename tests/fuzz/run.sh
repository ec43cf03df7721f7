#!/usr/bin/env bash
# Runs the libFuzzer targets built in build/fuzz (make fuzz-build), one after the other, at low
# priority, one process each (no -jobs: that forks workers logging to ./fuzz-N.log). Each target
# starts from its committed seeds (tests/fuzz/corpus/<target>) and a local corpus
# (build/fuzz/corpus/<target>, never committed), and new inputs go into the local one; a finding
# is written to build/fuzz/artifacts/<target>-crash-* and makes the run exit 1 (the other targets
# still run).
#   tests/fuzz/run.sh [TARGET...]      every target when none is named
# Environment: FUZZ_SECONDS (per target, default 60), FUZZ_RUNS (per target, 0 = unlimited: the
# time decides), FUZZ_NICE (default 15), FUZZ_LOG_DIR (a log per target, default
# build/fuzz/logs). Each target's closing line (executions, cov:, ft:) is printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-0}
niceness=${FUZZ_NICE:-15}
logs=${FUZZ_LOG_DIR:-build/fuzz/logs}
bin=build/fuzz/tests/fuzz
if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  targets=()
  for f in tests/fuzz/*_fuzz.cc; do
    name=$(basename "$f" _fuzz.cc)
    targets+=("$name")
  done
fi
mkdir -p "$logs" build/fuzz/artifacts
status=0
for t in "${targets[@]}"; do
  exe="$bin/${t}_fuzz"
  if [[ ! -x "$exe" ]]; then
    echo "fuzz: $exe is not built (make fuzz-build)" >&2
    exit 2
  fi
  mkdir -p "build/fuzz/corpus/$t"
  args=(-max_total_time="$seconds" -print_final_stats=1
        -artifact_prefix="build/fuzz/artifacts/$t-")
  [[ "$runs" != 0 ]] && args+=(-runs="$runs")
  [[ -f "tests/fuzz/dict/$t.dict" ]] && args+=(-dict="tests/fuzz/dict/$t.dict")
  if [[ "$runs" != 0 ]]; then
    echo "fuzz: $t (${seconds}s, at most $runs runs)"
  else
    echo "fuzz: $t (${seconds}s)"
  fi
  start=$(date +%s)
  if nice -n "$niceness" "$exe" "${args[@]}" "build/fuzz/corpus/$t" "tests/fuzz/corpus/$t" \
      >"$logs/$t.log" 2>&1; then
    rc=0
  else
    rc=$?
  fi
  end=$(date +%s)
  # libFuzzer's last status line ("#N DONE cov: ... ft: ...") and its final stats.
  summary=$(grep -E '^#[0-9]+' "$logs/$t.log" | tail -1 || true)
  execs=$(grep -E '^stat::number_of_executed_units' "$logs/$t.log" | awk '{print $2}' || true)
  echo "fuzz: $t: ${execs:-?} executions in $((end - start))s; $summary"
  if [[ $rc -ne 0 ]]; then
    echo "fuzz: $t FAILED (exit $rc): see $logs/$t.log and build/fuzz/artifacts/" >&2
    grep -E 'ERROR|FUZZ_CHECK|SUMMARY|Test unit written' "$logs/$t.log" | head -5 >&2 || true
    status=1
  fi
done
exit $status
