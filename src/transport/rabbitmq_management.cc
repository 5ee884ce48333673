// Stalk — Celery monitoring server.
#include "transport/rabbitmq_management.h"

#include <curl/curl.h>

#include <cctype>
#include <nlohmann/json.hpp>
#include <unordered_map>

namespace stalk {
namespace {

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

int64_t Count(const nlohmann::json& q, const char* key) {
  const auto it = q.find(key);
  return it != q.end() && it->is_number() ? it->get<int64_t>() : 0;
}

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

}  // namespace

std::string PercentEncode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

RabbitManagementReader::RabbitManagementReader(std::string api_url, std::string vhost, int timeout_ms)
    : api_url_(std::move(api_url)), vhost_(std::move(vhost)), timeout_ms_(timeout_ms) {
  static CurlGlobal global;
  if (api_url_.empty() || api_url_.back() != '/') {
    api_url_ += '/';
  }
  curl_ = curl_easy_init();
}

RabbitManagementReader::~RabbitManagementReader() {
  if (curl_ != nullptr) {
    curl_easy_cleanup(static_cast<CURL*>(curl_));
  }
}

std::string RabbitManagementReader::QueuesUrl() const {
  return api_url_ + "queues/" + PercentEncode(vhost_) + "?columns=name,messages,consumers";
}

std::string RabbitManagementReader::Redacted() const {
  std::string u = api_url_;
  const size_t scheme = u.find("://");
  const size_t at = u.find('@', scheme == std::string::npos ? 0 : scheme + 3);
  const size_t slash = u.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (scheme != std::string::npos && at != std::string::npos && (slash == std::string::npos || at < slash)) {
    const size_t colon = u.find(':', scheme + 3);
    if (colon != std::string::npos && colon < at) {
      u.replace(colon + 1, at - colon - 1, "***");
    }
  }
  return u;
}

Result<std::vector<QueueDepth>> RabbitManagementReader::Lengths(const std::vector<std::string>& queues) {
  std::lock_guard lock(mu_);
  auto* curl = static_cast<CURL*>(curl_);
  if (curl == nullptr) {
    return Error{"--broker_api: cannot initialise libcurl"};
  }
  std::string body;
  const std::string url = QueuesUrl();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms_));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms_));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "stalk");
  const CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) {
    return Error{"--broker_api " + Redacted() + ": " + curl_easy_strerror(rc)};
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    return Error{"--broker_api " + Redacted() + ": HTTP " + std::to_string(status) +
                 (status == 401 ? " (wrong user or password in the URL)" : "")};
  }
  const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_array()) {
    return Error{"--broker_api " + Redacted() + ": the queue list is not a JSON array"};
  }
  std::unordered_map<std::string, QueueDepth> seen;
  for (const auto& q : json) {
    if (!q.is_object() || !q.contains("name") || !q["name"].is_string())
      continue;
    QueueDepth d;
    d.name = q["name"].get<std::string>();
    d.messages = Count(q, "messages");  // absent until the first stats sample of a new queue
    d.consumers = Count(q, "consumers");
    seen.emplace(d.name, d);
  }
  std::vector<QueueDepth> out;
  for (const auto& name : queues) {
    auto it = seen.find(name);
    out.push_back(it != seen.end() ? it->second : QueueDepth{name, 0, 0});
  }
  return out;
}

}  // namespace stalk
