#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, fuzz/README.md) with clang, ASan and UBSan, in build-fuzz/, and
# runs each for the given number of seconds (default 60), then prints execs/s and coverage per target.
#   scripts/fuzz.sh                       every fuzzer, 60 s each (what a CI job would run)
#   scripts/fuzz.sh 600 fuzz_http         one fuzzer, 10 minutes
#   FUZZ_FORKS=2 scripts/fuzz.sh 14400    hours: 4 h each, 2 processes per fuzzer (-fork)
#   FUZZ_JOBS=2 scripts/fuzz.sh 20        two fuzzers at a time (what CI runs)
# Seeds come from fuzz/corpus/<target>/ (never written here); new inputs go to
# build-fuzz/corpus/<target>/, crashes and their inputs to build-fuzz/findings/<target>/. Exits non-zero
# when any fuzzer found a crash. A crash is reproduced with: build-fuzz/fuzz/<target> <crash-file>; fix it,
# then copy the input into fuzz/corpus/<target>/regression-<what> so the ctest replay keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift || true
ALL=(fuzz_envelope fuzz_body fuzz_http fuzz_broker_url fuzz_task_query fuzz_resp fuzz_config fuzz_control_reply fuzz_auth)
if (($#)); then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi
BUILD_DIR=${BUILD_DIR:-build-fuzz}

if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz.sh: needs clang and libclang-rt-14-dev (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
# -g1: line tables are all a crash report needs. FUZZ_OPT: the optimisation level (CI passes -O1).
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="${FUZZ_OPT:--O2} -g1" -DSTALK_FUZZ=ON -DSTALK_BUILD_TESTS=OFF -DSTALK_BUILD_BENCH=OFF \
  -DCMAKE_UNITY_BUILD="${STALK_UNITY:-OFF}" >/dev/null
ninja -C "$BUILD_DIR" -j"${FUZZ_BUILD_JOBS:-1}" "${TARGETS[@]}"

dict_for() {
  case "$1" in
    fuzz_envelope | fuzz_body) echo fuzz/dict/events.dict ;;
    fuzz_http | fuzz_task_query) echo fuzz/dict/http.dict ;;
    fuzz_auth) echo fuzz/dict/auth.dict ;;
    fuzz_broker_url) echo fuzz/dict/broker_url.dict ;;
    fuzz_resp) echo fuzz/dict/resp.dict ;;
    fuzz_config) echo fuzz/dict/config.dict ;;
    fuzz_control_reply) echo fuzz/dict/control_reply.dict ;;
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
# One fuzzer: its libFuzzer log and a one-line summary in $BUILD_DIR/findings/<target>.{log,summary};
# returns non-zero when it found something.
run_one() {
  local t=$1 work="$BUILD_DIR/corpus/$1" findings="$BUILD_DIR/findings/$1" log="$BUILD_DIR/findings/$1.log"
  mkdir -p "$work" "$findings"
  local fork=()
  if [[ -n "${FUZZ_FORKS:-}" ]]; then fork=(-fork="$FUZZ_FORKS" -ignore_crashes=1); fi
  echo "== $t: ${SECONDS_EACH}s (log: $log)"
  local rc=0
  "$BUILD_DIR/fuzz/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len_for "$t")" -dict="$(dict_for "$t")" -artifact_prefix="$findings/" \
    -print_final_stats=1 "${fork[@]}" "$work" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  local done_line execs rate
  done_line=$(grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE)" "$log" | tail -1 || true)
  execs=$(grep -oP "stat::number_of_executed_units: \K[0-9]+" "$log" | tail -1 || true)
  rate=$(grep -oP "stat::average_exec_per_sec: *\K[0-9]+" "$log" | tail -1 || true)
  printf '%-16s execs %-10s execs/s %-7s %s\n' "$t" "${execs:-?}" "${rate:-?}" \
    "$(echo "$done_line" | grep -oP 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' || true)" \
    >"$BUILD_DIR/findings/$t.summary"
  if ((rc != 0)) || ls "$findings"/crash-* "$findings"/leak-* "$findings"/timeout-* "$findings"/oom-* >/dev/null 2>&1; then
    grep -m1 -E "ERROR|invariant|runtime error" "$log" || tail -5 "$log"
    return 1
  fi
}

# FUZZ_JOBS fuzzers at a time (default 1; CI runs 2, one per core).
failed=()
declare -A running=()
for t in "${TARGETS[@]}"; do
  while ((${#running[@]} >= ${FUZZ_JOBS:-1})); do
    for pid in "${!running[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" || failed+=("${running[$pid]}")
        unset "running[$pid]"
      fi
    done
    ((${#running[@]} >= ${FUZZ_JOBS:-1})) && sleep 1
  done
  run_one "$t" &
  running[$!]=$t
done
for pid in "${!running[@]}"; do
  wait "$pid" || failed+=("${running[$pid]}")
done
summary=()
for t in "${TARGETS[@]}"; do summary+=("$(cat "$BUILD_DIR/findings/$t.summary")"); done
echo
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in: ${failed[*]} (see $BUILD_DIR/findings/)" >&2
  exit 1
fi
