// Stalk — Celery monitoring server.
#include "auth/http_client.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>

namespace stalk {
namespace {

struct Sink {
  std::string body;
  size_t max = 0;
  bool too_big = false;
};

size_t Collect(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t bytes = size * n;
  if (sink->body.size() + bytes > sink->max) {
    sink->too_big = true;
    return 0;  // aborts the transfer
  }
  sink->body.append(data, bytes);
  return bytes;
}

void InitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

using CurlPtr = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;

Result<HttpClientResponse> Perform(CURL* curl, const std::string& url, const HttpClientOptions& options) {
  Sink sink;
  sink.max = options.max_body_bytes;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options.timeout_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, options.timeout_ms);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "stalk");
  if (!options.ca_file.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, options.ca_file.c_str());
  }
  curl_slist* headers = nullptr;
  for (const std::string& h : options.headers) {
    headers = curl_slist_append(headers, h.c_str());
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers, curl_slist_free_all);
  if (headers != nullptr) {
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  }
  const CURLcode rc = curl_easy_perform(curl);
  if (sink.too_big) {
    return Error{"response from " + url + " is larger than " + std::to_string(options.max_body_bytes) + " bytes"};
  }
  if (rc != CURLE_OK) {
    return Error{std::string("request to ") + url + " failed: " + curl_easy_strerror(rc)};
  }
  HttpClientResponse r;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  r.body = std::move(sink.body);
  return r;
}

}  // namespace

std::string UrlEncode(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Result<HttpClientResponse> HttpGet(const std::string& url, const HttpClientOptions& options) {
  InitOnce();
  CurlPtr curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    return Error{"cannot create an HTTP client"};
  }
  return Perform(curl.get(), url, options);
}

Result<HttpClientResponse> HttpPostForm(const std::string& url, const std::map<std::string, std::string>& form,
                                        const std::string& basic_user, const std::string& basic_password,
                                        const HttpClientOptions& options) {
  InitOnce();
  CurlPtr curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    return Error{"cannot create an HTTP client"};
  }
  std::string body;
  for (const auto& [k, v] : form) {
    if (!body.empty()) {
      body += '&';
    }
    body += UrlEncode(k) + "=" + UrlEncode(v);
  }
  curl_easy_setopt(curl.get(), CURLOPT_POST, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  if (!basic_user.empty()) {
    // RFC 6749 2.3.1: client id and secret are form-encoded before Basic encoding.
    const std::string user = UrlEncode(basic_user);
    const std::string pass = UrlEncode(basic_password);
    curl_easy_setopt(curl.get(), CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl.get(), CURLOPT_USERNAME, user.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_PASSWORD, pass.c_str());
    return Perform(curl.get(), url, options);
  }
  return Perform(curl.get(), url, options);
}

}  // namespace stalk
