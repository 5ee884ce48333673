// Stalk — Celery monitoring server.
#include "auth/auth_setup.h"

#include <chrono>

#include "auth/secrets.h"
#include "common/clock.h"
#include "common/log.h"

namespace stalk {

bool IsLoopbackAddress(const std::string& address) {
  return address == "localhost" || address == "::1" || address == "[::1]" || address.starts_with("127.");
}

Result<std::shared_ptr<AuthGuard>> MakeAuthGuard(const AuthConfig& config) {
  CredentialStore store;
  if (!config.basic_auth.empty()) {
    if (auto r = store.AddBasicAuthList(config.basic_auth); !r) {
      return Error{r.error()};
    }
  }
  if (!config.basic_auth_file.empty()) {
    if (auto r = store.LoadBasicAuthFile(config.basic_auth_file); !r) {
      return Error{r.error()};
    }
  }
  if (!config.api_tokens_file.empty()) {
    if (auto r = store.LoadTokensFile(config.api_tokens_file); !r) {
      return Error{r.error()};
    }
  }
  auto log = Logger("auth");
  std::shared_ptr<OidcLogin> oidc;
  const OidcSettings& o = config.oidc;
  if (!o.provider.empty() || !o.issuer.empty() || !o.client_id.empty()) {
    OidcSettings wanted = o;
    auto role = ParseRole(config.oidc_role);
    if (!role) {
      return Error{"--oidc_role must be viewer, operator or admin"};
    }
    wanted.role = *role;
    auto resolved = ResolveOidcSettings(wanted);
    if (!resolved) {
      return Error{resolved.error()};
    }
    std::string key = config.cookie_secret;
    if (key.empty()) {
      auto random = NewApiToken();
      if (!random) {
        return Error{random.error()};
      }
      key = *random;
      log->warn(
          "no --cookie_secret (STALK_COOKIE_SECRET): login sessions end when Stalk restarts and are not "
          "shared between instances");
    } else if (key.size() < 32) {
      return Error{"--cookie_secret must be at least 32 characters"};
    }
    log->info("OIDC login on: provider {}, issuer {}, role {}, e-mail filter {}", resolved->provider, resolved->issuer,
              config.oidc_role, resolved->email_regex.empty() ? "(any)" : resolved->email_regex);
    oidc = std::make_shared<OidcLogin>(*resolved, SignedCookie(key), [] { return UnixSeconds(); });
  }
  if (store.Empty() && !oidc) {
    if (config.unix_socket) {
      log->info("no authentication configured (Unix socket: access follows the socket file's permissions)");
    } else if (!IsLoopbackAddress(config.bind_address)) {
      if (!config.insecure_no_auth) {
        return Error{"refusing to listen on " + config.bind_address +
                     " with no authentication: anyone who can reach it could read tasks and control workers. "
                     "Set --basic_auth/--basic_auth_file/--api_tokens_file, bind to 127.0.0.1, or pass "
                     "--insecure-no-auth if a proxy in front of Stalk does the authentication"};
      }
      log->warn(
          "NO AUTHENTICATION (--insecure-no-auth): anyone who can reach {} can read tasks and control "
          "workers",
          config.bind_address);
    } else {
      log->info("no authentication configured (loopback only)");
    }
  } else {
    log->info("authentication on: basic auth {}, API tokens {}, /metrics {}", store.HasBasicAuth() ? "yes" : "no",
              store.HasTokens() ? "yes" : "no", config.metrics_public ? "public" : "protected");
  }
  AuthOptions opt;
  opt.metrics_public = config.metrics_public;
  opt.xheaders = config.xheaders;
  auto guard = std::make_shared<AuthGuard>(std::move(store), opt);
  guard->SetOidc(std::move(oidc));
  return guard;
}

}  // namespace stalk
