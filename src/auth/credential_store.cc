// Stalk — Celery monitoring server.
#include "auth/credential_store.h"

#include <fstream>
#include <sstream>

#include "auth/secrets.h"

namespace stalk {
namespace {

constexpr auto kVerifiedCacheTtl = std::chrono::minutes(5);
constexpr size_t kVerifiedCacheMax = 1024;

std::string_view Trim(std::string_view s) {
  const size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string_view::npos) {
    return {};
  }
  const size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) {
      return out;
    }
    start = pos + 1;
  }
}

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error{"cannot read " + path};
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

bool IsHex64(std::string_view s) {
  if (s.size() != 64) {
    return false;
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<bool> CredentialStore::AddBasicAuthList(std::string_view list) {
  int n = 0;
  for (std::string_view item : Split(list, ',')) {
    ++n;
    item = Trim(item);
    if (item.empty()) {
      continue;
    }
    const size_t colon = item.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == item.size()) {
      return Error{"--basic_auth entry " + std::to_string(n) + " is not user:password"};
    }
    users_.push_back(
        User{std::string(item.substr(0, colon)), std::string(item.substr(colon + 1)), false, Role::kAdmin});
  }
  return true;
}

Result<bool> CredentialStore::AddBasicAuthFileText(std::string_view text, const std::string& source) {
  int lineno = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++lineno;
    line = Trim(line);
    if (line.empty() || line.front() == '#') {
      continue;
    }
    const std::string where = source + ":" + std::to_string(lineno);
    auto parts = Split(line, ':');
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty()) {
      return Error{where + ": expected user:hash[:role]"};
    }
    if (!IsSupportedPasswordHash(parts[1])) {
      return Error{where + ": unsupported password hash (use `stalk hash-password`: bcrypt $2b$)"};
    }
    Role role = Role::kAdmin;
    if (parts.size() == 3) {
      auto r = ParseRole(Trim(parts[2]));
      if (!r) {
        return Error{where + ": role must be viewer, operator or admin"};
      }
      role = *r;
    }
    users_.push_back(User{std::string(parts[0]), std::string(parts[1]), true, role});
  }
  return true;
}

Result<bool> CredentialStore::LoadBasicAuthFile(const std::string& path) {
  auto text = ReadWholeFile(path);
  if (!text) {
    return Error{"--basic_auth_file: " + text.error()};
  }
  return AddBasicAuthFileText(*text, path);
}

Result<bool> CredentialStore::AddTokensFileText(std::string_view text, const std::string& source) {
  int lineno = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++lineno;
    line = Trim(line);
    if (line.empty() || line.front() == '#') {
      continue;
    }
    const std::string where = source + ":" + std::to_string(lineno);
    const size_t c1 = line.find(':');
    if (c1 == std::string_view::npos || !IsHex64(line.substr(0, c1))) {
      return Error{where + ": expected sha256hex:role:label (see `stalk token create`)"};
    }
    std::string_view rest = line.substr(c1 + 1);
    const size_t c2 = rest.find(':');
    auto role = ParseRole(Trim(rest.substr(0, c2)));
    if (!role) {
      return Error{where + ": role must be viewer, operator or admin"};
    }
    std::string label = c2 == std::string_view::npos ? std::string() : std::string(Trim(rest.substr(c2 + 1)));
    tokens_.push_back(
        Token{std::string(line.substr(0, c1)), *role, label.empty() ? "line" + std::to_string(lineno) : label});
  }
  return true;
}

Result<bool> CredentialStore::LoadTokensFile(const std::string& path) {
  auto text = ReadWholeFile(path);
  if (!text) {
    return Error{"--api_tokens_file: " + text.error()};
  }
  return AddTokensFileText(*text, path);
}

bool CredentialStore::HasUser(std::string_view name) const {
  for (const User& u : users_) {
    if (u.name == name) {
      return true;
    }
  }
  return false;
}

std::optional<Principal> CredentialStore::CheckBasic(std::string_view user, std::string_view password) const {
  // Plain users: every entry is compared (no early exit), so timing says nothing about which matched.
  std::optional<Principal> found;
  const User* hashed_user = nullptr;
  for (const User& u : users_) {
    const bool name_ok = ConstantTimeEquals(u.name, user);
    if (u.hashed) {
      if (name_ok && hashed_user == nullptr) {
        hashed_user = &u;
      }
      continue;
    }
    const bool pass_ok = ConstantTimeEquals(u.secret, password);
    if (name_ok && pass_ok && !found) {
      found = Principal{u.name, u.role};
    }
  }
  if (found || hashed_user == nullptr) {
    return found;
  }
  const std::string key = Sha256Hex(std::to_string(user.size()) + ":" + std::string(user) + std::string(password) +
                                    "\n" + hashed_user->secret);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(*cache_mu_);
    auto it = verified_cache_.find(key);
    if (it != verified_cache_.end() && it->second.expires > now) {
      return it->second.principal;
    }
  }
  if (!VerifyPasswordHash(password, hashed_user->secret)) {
    return std::nullopt;
  }
  Principal p{hashed_user->name, hashed_user->role};
  std::lock_guard lock(*cache_mu_);
  if (verified_cache_.size() >= kVerifiedCacheMax) {
    verified_cache_.clear();
  }
  verified_cache_[key] = CacheEntry{p, now + kVerifiedCacheTtl};
  return p;
}

std::optional<Principal> CredentialStore::CheckToken(std::string_view token) const {
  const std::string digest = Sha256Hex(token);
  std::optional<Principal> found;
  for (const Token& t : tokens_) {
    if (ConstantTimeEquals(t.sha256hex, digest) && !found) {
      found = Principal{"token:" + t.label, t.role};
    }
  }
  return found;
}

std::string CredentialStore::TokenFileLine(std::string_view token, Role role, std::string_view label) {
  return Sha256Hex(token) + ":" + std::string(RoleName(role)) + ":" + std::string(label);
}

}  // namespace stalk
