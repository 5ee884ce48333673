#!/usr/bin/env bash
# Fails when a tracked C++ file differs from what clang-format (the repo's .clang-format) would write,
# and lists those files. CI runs it first (scripts/test.sh, stage "format"). Fix with:
#   git ls-files '*.cc' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
drifted=()
while IFS= read -r f; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || drifted+=("$f")
done < <(git ls-files '*.cc' '*.h')
if ((${#drifted[@]})); then
  printf 'check_format.sh: not clang-formatted:\n' >&2
  printf '  %s\n' "${drifted[@]}" >&2
  exit 1
fi
echo "check_format.sh: every C++ file is clang-formatted"
