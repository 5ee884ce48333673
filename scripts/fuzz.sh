#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, fuzz/README.md) with clang, ASan and UBSan, in build-fuzz/, and
# runs each for the given number of seconds (default 60), then prints execs/s and coverage per target.
#   scripts/fuzz.sh                       every fuzzer, 60 s each (what a CI job would run)
#   scripts/fuzz.sh 600 fuzz_http         one fuzzer, 10 minutes
#   FUZZ_FORKS=2 scripts/fuzz.sh 14400    hours: 4 h each, 2 processes per fuzzer (-fork)
# Seeds come from fuzz/corpus/<target>/ (never written here); new inputs go to
# build-fuzz/corpus/<target>/, crashes and their inputs to build-fuzz/findings/<target>/. Exits non-zero
# when any fuzzer found a crash. A crash is reproduced with: build-fuzz/fuzz/<target> <crash-file>; fix it,
# then copy the input into fuzz/corpus/<target>/regression-<what> so the ctest replay keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift || true
ALL=(fuzz_envelope fuzz_body fuzz_http fuzz_broker_url fuzz_task_query fuzz_resp)
if (($#)); then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi
BUILD_DIR=${BUILD_DIR:-build-fuzz}

if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz.sh: needs clang and libclang-rt-14-dev (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTALK_FUZZ=ON -DSTALK_BUILD_TESTS=OFF -DSTALK_BUILD_BENCH=OFF >/dev/null
ninja -C "$BUILD_DIR" -j"${FUZZ_BUILD_JOBS:-1}" "${TARGETS[@]}"

dict_for() {
  case "$1" in
    fuzz_envelope | fuzz_body) echo fuzz/dict/events.dict ;;
    fuzz_http | fuzz_task_query) echo fuzz/dict/http.dict ;;
    fuzz_broker_url) echo fuzz/dict/broker_url.dict ;;
    fuzz_resp) echo fuzz/dict/resp.dict ;;
  esac
}
max_len_for() {
  case "$1" in
    fuzz_envelope | fuzz_body) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
summary=()
for t in "${TARGETS[@]}"; do
  work="$BUILD_DIR/corpus/$t"
  findings="$BUILD_DIR/findings/$t"
  log="$BUILD_DIR/findings/$t.log"
  mkdir -p "$work" "$findings"
  fork=()
  if [[ -n "${FUZZ_FORKS:-}" ]]; then fork=(-fork="$FUZZ_FORKS" -ignore_crashes=1); fi
  echo "== $t: ${SECONDS_EACH}s (log: $log)"
  set +e
  "$BUILD_DIR/fuzz/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len_for "$t")" -dict="$(dict_for "$t")" -artifact_prefix="$findings/" \
    -print_final_stats=1 "${fork[@]}" "$work" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  if ((rc != 0)) || ls "$findings"/crash-* "$findings"/leak-* "$findings"/timeout-* "$findings"/oom-* >/dev/null 2>&1; then
    failed+=("$t")
    grep -m1 -E "ERROR|invariant|runtime error" "$log" || tail -5 "$log"
  fi
  done_line=$(grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE)" "$log" | tail -1)
  execs=$(grep -oP "stat::number_of_executed_units: \K[0-9]+" "$log" | tail -1)
  rate=$(grep -oP "stat::average_exec_per_sec: *\K[0-9]+" "$log" | tail -1)
  summary+=("$(printf '%-16s execs %-10s execs/s %-7s %s' "$t" "${execs:-?}" "${rate:-?}" \
    "$(echo "$done_line" | grep -oP 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*')")")
done
echo
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in: ${failed[*]} (see $BUILD_DIR/findings/)" >&2
  exit 1
fi
