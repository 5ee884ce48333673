// Stalk — Celery monitoring server.
#include "auth/auth_setup.h"

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
  if (store.Empty()) {
    if (!IsLoopbackAddress(config.bind_address)) {
      log->warn("NO AUTHENTICATION: anyone who can reach {} can read tasks and control workers; set "
                "--basic_auth/--basic_auth_file/--api_tokens_file or bind to 127.0.0.1",
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
  return std::make_shared<AuthGuard>(std::move(store), opt);
}

}  // namespace stalk
