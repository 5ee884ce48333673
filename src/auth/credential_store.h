// Stalk — Celery monitoring server.
// CredentialStore: who may log in. Basic-auth users from Flower's `--basic_auth user:pass,...`
// (plain, admin) and from `--basic_auth_file` (`user:crypt-hash[:role]` lines, admin by default);
// API tokens from `--api_tokens_file` (`sha256hex:role:label` lines: only the hash is stored).
// Lookups compare in constant time; a successful hash verification is cached for a few minutes
// (keyed by SHA-256 of the credentials) so a browser sending Basic auth on every request does not
// pay a bcrypt verification each time. Errors name the file and line, never the secret.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/roles.h"
#include "common/result.h"

namespace stalk {

struct Principal {
  std::string name;  // user name, or "token:<label>"
  Role role = Role::kViewer;
};

class CredentialStore {
 public:
  // "user:pass,user2:pass2" (Flower's --basic_auth). Users are admin.
  Result<bool> AddBasicAuthList(std::string_view list);
  // `user:hash[:role]` lines; blank lines and `#` comments are skipped.
  Result<bool> AddBasicAuthFileText(std::string_view text, const std::string& source);
  Result<bool> LoadBasicAuthFile(const std::string& path);
  // `sha256hex:role[:label]` lines.
  Result<bool> AddTokensFileText(std::string_view text, const std::string& source);
  Result<bool> LoadTokensFile(const std::string& path);

  bool HasBasicAuth() const { return !users_.empty(); }
  bool HasTokens() const { return !tokens_.empty(); }
  bool Empty() const { return users_.empty() && tokens_.empty(); }
  bool HasUser(std::string_view name) const;

  std::optional<Principal> CheckBasic(std::string_view user, std::string_view password) const;
  std::optional<Principal> CheckToken(std::string_view token) const;

  // The line to add to --api_tokens_file for `token`.
  static std::string TokenFileLine(std::string_view token, Role role, std::string_view label);

 private:
  struct User {
    std::string name;
    std::string secret;  // the plain password (--basic_auth) or a crypt(3) hash (file)
    bool hashed = false;
    Role role = Role::kAdmin;
  };
  struct Token {
    std::string sha256hex;
    Role role = Role::kViewer;
    std::string label;
  };
  struct CacheEntry {
    Principal principal;
    std::chrono::steady_clock::time_point expires;
  };

  std::vector<User> users_;
  std::vector<Token> tokens_;
  std::unique_ptr<std::mutex> cache_mu_ = std::make_unique<std::mutex>();  // movable store
  mutable std::unordered_map<std::string, CacheEntry> verified_cache_;
};

}  // namespace stalk
