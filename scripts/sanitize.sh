#!/usr/bin/env bash
# Stalk — Celery monitoring server.
# sanitize.sh: builds Stalk with sanitizers and runs the test suites under them (issue "reliability").
#   scripts/sanitize.sh address,undefined          ASan + UBSan: unit tests and every integration test
#   scripts/sanitize.sh thread                     TSan: the same
#   scripts/sanitize.sh address,undefined unit     unit tests only (what CI runs)
#   SAN_TESTS="test_lifecycle test_store" scripts/sanitize.sh thread integration
# Builds in build-<sanitizer>/ (Release flags -O1 -g: sanitizers want optimisation but readable
# stacks); benchmarks and fuzzers are left out. Any report fails the run: ASan and UBSan abort, TSan
# exits 66 (halt_on_error), and the integration harness treats a stalk that dies as a failure.
# Needs what scripts/bootstrap.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
SAN=${1:?usage: scripts/sanitize.sh address,undefined|thread [unit|integration|all]}
WHAT=${2:-all}
BUILD_DIR=${BUILD_DIR:-build-${SAN//,/-}}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g" \
  -DSTALK_SANITIZE="$SAN" -DSTALK_BUILD_BENCH=OFF -DSTALK_WERROR=ON >/dev/null
ninja -C "$BUILD_DIR" -j"$JOBS"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66:second_deadlock_stack=1}
case $WHAT in
  unit) ctest --test-dir "$BUILD_DIR" -LE integration --output-on-failure -j"$JOBS" ;;
  integration | all)
    if [[ -n ${SAN_TESTS:-} ]]; then
      regex="integration_($(tr ' ' '|' <<<"$SAN_TESTS"))$"
      ctest --test-dir "$BUILD_DIR" -R "$regex" --output-on-failure --timeout 900
    elif [[ $WHAT == integration ]]; then
      ctest --test-dir "$BUILD_DIR" -L integration --output-on-failure --timeout 900
    else
      ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 -j"$JOBS"
    fi
    ;;
  *) echo "sanitize.sh: unknown suite '$WHAT' (unit, integration, all)" >&2; exit 2 ;;
esac
