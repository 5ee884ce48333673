// Stalk — Celery monitoring server.
// Secret detection (see secret_scan.h): line-based, deliberately simple, tuned to miss nothing
// obvious in .env files and Python settings while leaving placeholders alone.
#include "setup/secret_scan.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <regex>

namespace stalk {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

bool KeyNamesSecret(std::string_view key) {
  static constexpr std::array<std::string_view, 9> kWords{"secret", "password",    "passwd",     "token",     "api_key",
                                                          "apikey", "private_key", "access_key", "credential"};
  std::string k = Lower(key);
  return std::any_of(kWords.begin(), kWords.end(), [&](std::string_view w) { return k.find(w) != std::string::npos; });
}

}  // namespace

bool IsPlaceholderValue(std::string_view value) {
  std::string v = Lower(Trim(value));
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
    v = v.substr(1, v.size() - 2);
  }
  if (v.empty() || v == "none" || v == "null" || v == "true" || v == "false")
    return true;
  static constexpr std::array<std::string_view, 14> kMarks{
      "your_", "_here", "changeme", "change_me",  "change-me", "placeholder", "example",
      "xxx",   "<",     "${",       "os.environ", "getenv",    "env(",        "config("};
  return std::any_of(kMarks.begin(), kMarks.end(), [&](std::string_view m) { return v.find(m) != std::string::npos; });
}

std::vector<SecretFinding> FindSecrets(const std::string& file, std::string_view text) {
  // KEY = value, KEY=value, export KEY=value, "key": value; and scheme://user:password@host.
  static const std::regex kAssign(R"(^\s*(?:export\s+)?["']?([A-Za-z_][A-Za-z0-9_.]*)["']?\s*[:=]\s*(.+?)\s*,?\s*$)");
  static const std::regex kUrlPassword(R"(([a-z][a-z0-9+.-]*)://[^:/@\s'"]*:([^@\s'"]+)@)");
  const bool python = file.size() > 3 && file.compare(file.size() - 3, 3, ".py") == 0;
  std::vector<SecretFinding> out;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos)
      end = text.size();
    std::string line(text.substr(pos, end - pos));
    ++line_no;
    pos = end + 1;
    std::string_view trimmed = Trim(line);
    if (trimmed.empty() || trimmed.front() == '#') {
      if (end == text.size())
        break;
      continue;
    }
    std::smatch m;
    bool found = false;
    if (std::regex_search(line, m, kUrlPassword) && !IsPlaceholderValue(m[2].str())) {
      out.push_back({file, line_no, "URL password"});
      found = true;
    }
    // In Python only a literal counts: `PASSWORD = get_password()` holds no secret.
    if (!found && std::regex_match(line, m, kAssign) && KeyNamesSecret(m[1].str()) &&
        (!python || m[2].str().front() == '"' || m[2].str().front() == '\'') && !IsPlaceholderValue(m[2].str())) {
      out.push_back({file, line_no, m[1].str()});
    }
    if (end == text.size())
      break;
  }
  return out;
}

}  // namespace stalk
