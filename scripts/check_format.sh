#!/usr/bin/env bash
# Fails when a tracked C++ file differs from what clang-format (the repo's .clang-format) would write,
# and lists those files. CI runs it first (scripts/test.sh, stage "format"). Fix with:
#   git ls-files '*.cc' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
# Each file is checked on its own (in parallel) so the list names exactly the drifted ones.
drifted=$(git ls-files -z '*.cc' '*.h' |
  xargs -0 -P"$(nproc)" -I{} sh -c 'clang-format --dry-run -Werror "$1" >/dev/null 2>&1 || echo "$1"' _ {})
if [[ -n $drifted ]]; then
  printf 'check_format.sh: not clang-formatted:\n%s\n' "$(sed 's/^/  /' <<<"$drifted" | sort)" >&2
  exit 1
fi
echo "check_format.sh: every C++ file is clang-formatted"
