// Stalk — Celery monitoring server.
// MakeAuthGuard: builds the AuthGuard from `stalk serve` settings, logs what is configured (never a
// credential) and warns loudly when Stalk runs open on a non-loopback address.
#pragma once

#include <memory>
#include <string>

#include "auth/auth_guard.h"
#include "common/result.h"

namespace stalk {

struct AuthConfig {
  std::string basic_auth;       // "user:pass,..." (secret)
  std::string basic_auth_file;  // path
  std::string api_tokens_file;  // path
  bool metrics_public = false;
  bool xheaders = false;
  std::string bind_address;     // for the "open on the network" warning
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackAddress(const std::string& address);

Result<std::shared_ptr<AuthGuard>> MakeAuthGuard(const AuthConfig& config);

}  // namespace stalk
