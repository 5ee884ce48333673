// Stalk — Celery monitoring server.
// UnifiedDiff: `diff -u`-style text between two versions of a small file, for `stalk init --dry-run`.
// A plain LCS over lines (O(n·m)): the files init writes are a few hundred lines at most.
#pragma once

#include <string>

namespace stalk {

// The diff from `before` to `after` labelled a/<path> and b/<path> ("/dev/null" for a new file when
// `before_exists` is false); "" when they are equal. Three lines of context, like diff -u.
std::string UnifiedDiff(const std::string& path, const std::string& before, const std::string& after,
                        bool before_exists);

}  // namespace stalk
