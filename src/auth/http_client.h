// Stalk — Celery monitoring server.
// A small blocking HTTPS client on libcurl for the OIDC flow (discovery, JWKS, the token endpoint):
// bounded time and response size, TLS verification always on (an optional CA file for private
// providers), no redirects followed across schemes.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace stalk {

struct HttpClientResponse {
  long status = 0;
  std::string body;
};

struct HttpClientOptions {
  long timeout_ms = 5000;
  size_t max_body_bytes = 1u << 20;
  std::string ca_file;               // extra trust for a private provider; empty: the system's
  std::vector<std::string> headers;  // extra request headers, "Name: value"
};

Result<HttpClientResponse> HttpGet(const std::string& url, const HttpClientOptions& options);
// POST application/x-www-form-urlencoded `form`, with HTTP Basic credentials when `basic_user` is set.
Result<HttpClientResponse> HttpPostForm(const std::string& url, const std::map<std::string, std::string>& form,
                                        const std::string& basic_user, const std::string& basic_password,
                                        const HttpClientOptions& options);
std::string UrlEncode(const std::string& text);

}  // namespace stalk
