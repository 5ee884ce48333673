#!/usr/bin/env bash
# Builds Stalk with warnings as errors and runs the whole test suite with ctest: unit tests, then the
# integration tests, which start their own redis-server and Celery workers on 127.0.0.1.
#   scripts/test.sh            everything
#   scripts/test.sh -L unit    only unit tests (any ctest arguments are passed on)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTALK_WERROR=ON >/dev/null
cmake --build "$BUILD_DIR" -j2
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 "$@"
