// Stalk — Celery monitoring server.
// MakeAuthGuard: builds the AuthGuard from `stalk serve` settings, logs what is configured (never a
// credential) and warns loudly when Stalk runs open on a non-loopback address.
#pragma once

#include <memory>
#include <string>

#include "auth/auth_guard.h"
#include "auth/oidc.h"
#include "common/result.h"

namespace stalk {

struct AuthConfig {
  std::string basic_auth;       // "user:pass,..." (secret)
  std::string basic_auth_file;  // path
  std::string api_tokens_file;  // path
  bool metrics_public = false;
  bool xheaders = false;
  std::string bind_address;       // a non-loopback address with no credentials is refused...
  bool insecure_no_auth = false;  // ...unless the operator says so explicitly (--insecure-no-auth)
  bool unix_socket = false;       // a Unix socket is reachable only through the file system
  // OIDC login: on when any of provider, issuer or client id is set.
  OidcSettings oidc;
  std::string oidc_role = "viewer";
  std::string cookie_secret;  // signs session cookies; empty: a random key per process
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackAddress(const std::string& address);

Result<std::shared_ptr<AuthGuard>> MakeAuthGuard(const AuthConfig& config);

}  // namespace stalk
