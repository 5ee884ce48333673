#!/usr/bin/env bash
# The whole test run: what CI runs (.ci/run). Installs what is missing (scripts/bootstrap.sh), then
# a format check, then three stages, each in its own build tree (unity builds, all warnings as errors):
#   format  scripts/check_format.sh: every C++ file as clang-format writes it.
#   asan  build-address-undefined/: clang with AddressSanitizer, LeakSanitizer and UBSan, benchmarks
#         built; every ctest test: unit tests, the fuzz-corpus replay, the integration tests against
#         real servers (redis-server, rabbitmq-server, postgresql, Celery workers, chromium...) and the
#         2-minute soak. Any sanitizer report fails the test that caused it.
#   tsan  build-thread/: GCC (so CI compiles with both compilers) with ThreadSanitizer; the unit tests
#         with threads (TSAN_UNIT) and the integration tests whose code paths have the most threads
#         (TSAN_TESTS; test_store's writer thread is covered by store_test, and its PostgreSQL cases
#         take two minutes under TSan: `scripts/sanitize.sh thread integration` runs every file).
#   fuzz  build-fuzz/: clang + libFuzzer (-O1: optimisation buys little in 20 s runs); every fuzzer
#         for FUZZ_SECONDS (20), two at a time.
#
#   scripts/test.sh                         every stage (CI)
#   scripts/test.sh -L unit                 the asan stage only, with these ctest arguments
#   STALK_TEST_STAGES=plain scripts/test.sh build/ without sanitizers (RelWithDebInfo), every test
#   STALK_TEST_STAGES="asan fuzz" scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if (($#)); then STAGES=${STALK_TEST_STAGES:-asan}; else STAGES=${STALK_TEST_STAGES:-format asan tsan fuzz}; fi
TSAN_UNIT=${TSAN_UNIT:-common_test state_test metrics_test metrics_slices_test store_test control_test alerts_test ingest_test redis_pubsub_test web_test}
TSAN_TESTS=${TSAN_TESTS:-test_lifecycle test_broker_restart test_control test_capture_replay test_alerts}

stage() { printf '\n===== %s: %s (%s)\n' "$1" "$2" "$(date +%T)"; }
for s in $STAGES; do
  case $s in
    format)
      stage format "clang-format check"
      bash scripts/check_format.sh
      ;;
    plain)
      stage plain "build/, every test"
      cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTALK_WERROR=ON >/dev/null
      cmake --build build -j2
      ctest --test-dir build --output-on-failure -j2 "$@"
      ;;
    asan)
      stage asan "AddressSanitizer + UBSan, every test"
      SAN_CXX=clang++ JOBS=2 STALK_UNITY=ON STALK_BENCH=ON bash scripts/sanitize.sh address,undefined all "$@"
      ;;
    tsan)
      stage tsan "ThreadSanitizer: $TSAN_UNIT $TSAN_TESTS"
      JOBS=2 STALK_UNITY=ON SAN_UNIT=$TSAN_UNIT SAN_TESTS=$TSAN_TESTS bash scripts/sanitize.sh thread all
      ;;
    fuzz)
      stage fuzz "every fuzzer, ${FUZZ_SECONDS:-20} s each"
      FUZZ_OPT=-O1 FUZZ_JOBS=2 FUZZ_BUILD_JOBS=2 STALK_UNITY=ON bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
      ;;
    *) echo "test.sh: unknown stage '$s' (format, asan, tsan, fuzz, plain)" >&2; exit 2 ;;
  esac
done
stage finished "$STAGES"
