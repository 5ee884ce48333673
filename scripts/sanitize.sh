#!/usr/bin/env bash
# Stalk — Celery monitoring server.
# sanitize.sh: builds Stalk with sanitizers and runs the test suites under them (issue "reliability").
#   scripts/sanitize.sh address,undefined          ASan + UBSan: unit tests and every integration test
#   scripts/sanitize.sh thread                     TSan: the same
#   scripts/sanitize.sh address,undefined unit     unit tests only
#   scripts/sanitize.sh thread all -R store        any ctest arguments after the suite pick the tests
#   SAN_TESTS="test_lifecycle test_store" scripts/sanitize.sh thread integration
#   STALK_UNITY=ON ...    a unity build (about 40% less compile CPU; CI's stages)
#   STALK_BENCH=ON ...    builds the benchmarks too, so `all` includes the 2-minute soak (CI's ASan stage)
#   SAN_CXX=clang++ ...   the compiler (default c++, GCC); clang compiles ASan+UBSan in half GCC's time
#   SAN_UNIT="store_test ingest_test" ...   builds and runs only these unit tests (CI's TSan stage:
#                         the ones with threads; parsers gain nothing from TSan)
# Builds in build-<sanitizer>/ (Release flags -O1 -g1: sanitizers want optimisation, and line tables
# are all their stack traces read); fuzzers are left out (scripts/fuzz.sh). Any report fails the run: ASan and UBSan abort, TSan
# exits 66 (halt_on_error), and the integration harness treats a stalk that dies as a failure.
# Needs what scripts/bootstrap.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
SAN=${1:?usage: scripts/sanitize.sh address,undefined|thread [unit|integration|all] [ctest args...]}
WHAT=${2:-all}
shift $(($# < 2 ? $# : 2))
BUILD_DIR=${BUILD_DIR:-build-${SAN//,/-}}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1" \
  -DCMAKE_CXX_COMPILER="${SAN_CXX:-c++}" -DSTALK_SANITIZE="$SAN" -DSTALK_BUILD_BENCH="${STALK_BENCH:-OFF}" \
  -DSTALK_WERROR=ON -DCMAKE_UNITY_BUILD="${STALK_UNITY:-OFF}" >/dev/null
# Unit tests to build and run: SAN_UNIT (target names), else all of them (every target).
if [[ -n ${SAN_UNIT:-} ]]; then
  read -ra unit_targets <<<"$SAN_UNIT"
  ninja -C "$BUILD_DIR" -j"$JOBS" stalk "${unit_targets[@]}"
  unit=(-R "^($(tr ' ' '|' <<<"$SAN_UNIT"))$")
else
  ninja -C "$BUILD_DIR" -j"$JOBS"
  unit=(-LE integration)
fi
# The integration harness scales its memory bounds by sanitizer (tests/integration/harness.py).
export STALK_SANITIZER=$SAN
# quarantine_size_mb: freed memory ASan holds back to catch use-after-free; 256 MiB by default, which
# would swamp the RSS bounds of the memory tests.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:quarantine_size_mb=32}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66:second_deadlock_stack=1}
# Integration tests to run: SAN_TESTS (file names without .py), else all of them.
if [[ -n ${SAN_TESTS:-} ]]; then
  integration=(-R "^(integration_($(tr ' ' '|' <<<"$SAN_TESTS")))$")
else
  integration=(-L integration)
fi
ctest_run() { ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 -j"$JOBS" "$@"; }
if (($#)); then  # explicit ctest arguments choose the tests
  ctest_run "$@"
  exit
fi
case $WHAT in
  unit) ctest_run "${unit[@]}" ;;
  integration) ctest_run "${integration[@]}" ;;
  all)
    ctest_run "${unit[@]}"
    ctest_run "${integration[@]}"
    ;;
  *) echo "sanitize.sh: unknown suite '$WHAT' (unit, integration, all)" >&2; exit 2 ;;
esac
