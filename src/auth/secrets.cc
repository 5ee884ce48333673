// Stalk — Celery monitoring server.
// Password hashes through libxcrypt, SHA-256 and randomness through OpenSSL's libcrypto.
#include "auth/secrets.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <memory>

namespace stalk {
namespace {

std::array<unsigned char, 32> Sha256(std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

std::string Hex(const unsigned char* p, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  const auto ha = Sha256(a);
  const auto hb = Sha256(b);
  return CRYPTO_memcmp(ha.data(), hb.data(), ha.size()) == 0;
}

std::string Sha256Hex(std::string_view data) {
  const auto h = Sha256(data);
  return Hex(h.data(), h.size());
}

bool IsSupportedPasswordHash(std::string_view hash) {
  for (std::string_view p : {"$2a$", "$2b$", "$2y$", "$y$", "$7$", "$6$", "$5$"}) {
    if (hash.starts_with(p)) {
      return true;
    }
  }
  return false;
}

bool VerifyPasswordHash(std::string_view password, const std::string& hash) {
  if (!IsSupportedPasswordHash(hash) || password.find('\0') != std::string_view::npos) {
    return false;
  }
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: keep it off the stack
  const std::string pw(password);
  const char* out = crypt_r(pw.c_str(), hash.c_str(), data.get());  // points into *data
  const bool ok = out != nullptr && out[0] != '*' && ConstantTimeEquals(out, hash);
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  return ok;
}

Result<std::string> HashPassword(std::string_view password, int cost) {
  if (password.empty() || password.find('\0') != std::string_view::npos) {
    return Error{"the password must be non-empty text"};
  }
  if (password.size() > 72) {
    return Error{"bcrypt uses at most 72 bytes of a password; use a shorter one"};
  }
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), nullptr, 0, salt, sizeof(salt)) == nullptr) {
    return Error{"cannot make a bcrypt salt (libxcrypt without bcrypt?)"};
  }
  auto data = std::make_unique<crypt_data>();
  const std::string pw(password);
  const char* out = crypt_r(pw.c_str(), salt, data.get());
  std::string hash = out != nullptr && out[0] != '*' ? std::string(out) : std::string();
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  if (hash.empty()) {
    return Error{"bcrypt hashing failed"};
  }
  return hash;
}

Result<std::string> NewApiToken() {
  std::array<unsigned char, 32> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
    return Error{"the system random generator failed"};
  }
  return "stalk_" + Hex(raw.data(), raw.size());
}

}  // namespace stalk
