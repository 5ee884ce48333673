// Stalk — Celery monitoring server.
// JSON Web Tokens as OpenID Connect uses them: base64url, a JWKS (the provider's public RSA keys), and
// verification of an RS256-signed compact JWS (the id_token) with OpenSSL. Only RS256 is accepted:
// "none" and HMAC algorithms are refused outright, so a token cannot choose how it is checked.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace stalk {

std::string Base64UrlEncode(std::string_view in);
// Accepts unpadded input (as JWTs are); false on characters outside the URL-safe alphabet.
bool Base64UrlDecode(std::string_view in, std::string& out);

struct Jwk {
  std::string kid;
  std::string n;  // modulus, base64url
  std::string e;  // exponent, base64url
};

// The RSA signing keys of a JWKS document ({"keys": [...]}); other key types are skipped.
Result<std::vector<Jwk>> ParseJwks(std::string_view json);

// Verifies `token`'s RS256 signature with the key named by its `kid` (or the only key when it names
// none) and returns its payload. Claims (iss, aud, exp, nonce) are the caller's to check.
Result<nlohmann::json> VerifyRs256Jwt(std::string_view token, const std::vector<Jwk>& keys);

}  // namespace stalk
