// Stalk — Celery monitoring server.
// UnifiedDiff (see unified_diff.h): LCS table, an edit script, then hunks with 3 lines of context.
#include "setup/unified_diff.h"

#include <algorithm>
#include <sstream>
#include <vector>

namespace stalk {
namespace {

constexpr size_t kContext = 3;

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

struct Op {
  char kind;    // ' ', '-', '+'
  size_t a, b;  // line indexes in before/after (the one that applies)
};

}  // namespace

std::string UnifiedDiff(const std::string& path, const std::string& before, const std::string& after,
                        bool before_exists) {
  if (before == after && before_exists)
    return "";
  const auto a = SplitLines(before), b = SplitLines(after);
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<uint32_t>> lcs(n + 1, std::vector<uint32_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::vector<Op> ops;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      ops.push_back({' ', i++, j++});
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      ops.push_back({'-', i++, j});  // deletions first, as diff -u prints them
    } else {
      ops.push_back({'+', i, j++});
    }
  }
  std::ostringstream out;
  out << "--- " << (before_exists ? "a/" + path : "/dev/null") << "\n+++ b/" << path << "\n";
  size_t k = 0;
  while (k < ops.size()) {
    while (k < ops.size() && ops[k].kind == ' ')
      ++k;
    if (k == ops.size())
      break;
    size_t start = k >= kContext ? k - kContext : 0;
    // Extend the hunk while the next change is within 2*context lines.
    size_t end = k;
    while (true) {
      while (end < ops.size() && ops[end].kind != ' ')
        ++end;
      size_t next = end;
      while (next < ops.size() && ops[next].kind == ' ')
        ++next;
      if (next < ops.size() && next - end <= 2 * kContext) {
        end = next;
        continue;
      }
      end = std::min(ops.size(), end + kContext);
      break;
    }
    size_t a_start = ops[start].a, b_start = ops[start].b, a_len = 0, b_len = 0;
    for (size_t x = start; x < end; ++x) {
      if (ops[x].kind != '+')
        ++a_len;
      if (ops[x].kind != '-')
        ++b_len;
    }
    out << "@@ -" << (a_len ? a_start + 1 : a_start) << "," << a_len << " +" << (b_len ? b_start + 1 : b_start) << ","
        << b_len << " @@\n";
    for (size_t x = start; x < end; ++x) {
      out << ops[x].kind << (ops[x].kind == '+' ? b[ops[x].b] : a[ops[x].a]) << "\n";
    }
    k = end;
  }
  return out.str();
}

}  // namespace stalk
