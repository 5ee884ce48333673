// Stalk — Celery monitoring server.
// Secret handling primitives: password hashes (bcrypt and the other strong formats libxcrypt's
// crypt_r verifies), SHA-256 of API tokens, constant-time comparison and random tokens.
// Nothing here logs; callers must never log the inputs either.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace stalk {

// True when `a` and `b` are equal; the time taken does not depend on where they differ nor on
// their lengths (both are hashed with SHA-256 first, then compared with CRYPTO_memcmp).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// True for hash formats accepted in --basic_auth_file: bcrypt ($2a$/$2b$/$2y$), yescrypt ($y$),
// scrypt ($7$), sha512-crypt ($6$) and sha256-crypt ($5$). Weak formats (DES, MD5) are refused.
bool IsSupportedPasswordHash(std::string_view hash);

// Verifies `password` against a crypt(3) hash; false on mismatch or an unsupported hash.
bool VerifyPasswordHash(std::string_view password, const std::string& hash);

// A new bcrypt ($2b$, cost `cost`) hash of `password` with a random salt.
Result<std::string> HashPassword(std::string_view password, int cost = 12);

// A new random API token: "stalk_" + 64 hex digits (256 bits from the OpenSSL CSPRNG).
Result<std::string> NewApiToken();

}  // namespace stalk
