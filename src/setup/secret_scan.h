// Stalk — Celery monitoring server.
// Secret detection for `stalk init`: finds lines that look like they hold a real credential
// (a KEY=value whose key names a secret, or a URL with an inline password) so init can warn about
// them. It reports where and which key, never the value; placeholders (`..._your_key_here`,
// `changeme`, `${VAR}`, `os.environ[...]`) are not secrets.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace stalk {

struct SecretFinding {
  std::string file;  // relative to the project
  int line = 0;      // 1-based
  std::string key;   // the setting's name, or "URL password"
};

// Every line of `text` (the contents of `file`) that holds a real-looking secret.
std::vector<SecretFinding> FindSecrets(const std::string& file, std::string_view text);

// True when `value` is an obvious placeholder or a reference to somewhere else (env, template).
bool IsPlaceholderValue(std::string_view value);

}  // namespace stalk
