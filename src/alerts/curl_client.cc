// Stalk — Celery monitoring server.
#include "alerts/curl_client.h"

#include <curl/curl.h>

#include <strings.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace stalk {
namespace {

size_t KeepBody(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  const size_t len = size * n;
  if (out->size() < 1024)
    out->append(data, std::min(len, 1024 - out->size()));
  return len;
}

size_t KeepRetryAfter(char* data, size_t size, size_t n, void* user) {
  const size_t len = size * n;
  static constexpr char kName[] = "retry-after:";
  if (len > sizeof(kName) - 1 && strncasecmp(data, kName, sizeof(kName) - 1) == 0) {
    *static_cast<double*>(user) = std::atof(std::string(data + sizeof(kName) - 1, len - (sizeof(kName) - 1)).c_str());
  }
  return len;
}

struct ReadState {
  const std::string* data;
  size_t pos = 0;
};

size_t ReadPayload(char* buf, size_t size, size_t n, void* user) {
  auto* st = static_cast<ReadState*>(user);
  const size_t len = std::min(size * n, st->data->size() - st->pos);
  std::memcpy(buf, st->data->data() + st->pos, len);
  st->pos += len;
  return len;
}

int Cancelled(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return cancel && cancel->load(std::memory_order_relaxed) ? 1 : 0;
}

void SetCancel(CURL* c, const std::atomic<bool>* cancel) {
  if (!cancel)
    return;
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, Cancelled);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(cancel));
}

}  // namespace

void CurlGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

PostResult HttpPost(const std::string& url, const std::map<std::string, std::string>& headers, const std::string& body,
                    double timeout_seconds, const std::atomic<bool>* cancel) {
  CurlGlobalInit();
  PostResult r;
  CURL* c = curl_easy_init();
  if (!c) {
    r.error = "curl_easy_init failed";
    return r;
  }
  curl_slist* hdrs = nullptr;
  for (const auto& [k, v] : headers)
    hdrs = curl_slist_append(hdrs, (k + ": " + v).c_str());
  hdrs = curl_slist_append(hdrs, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_seconds * 1000));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(timeout_seconds, 5.0) * 1000));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "stalk-alerts/" STALK_VERSION);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, KeepBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, KeepRetryAfter);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.retry_after);
  SetCancel(c, cancel);
  const CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  } else {
    r.error = curl_easy_strerror(rc);
  }
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(c);
  return r;
}

PostResult SmtpSend(const SmtpMessage& m, double timeout_seconds, const std::atomic<bool>* cancel) {
  CurlGlobalInit();
  PostResult r;
  CURL* c = curl_easy_init();
  if (!c) {
    r.error = "curl_easy_init failed";
    return r;
  }
  curl_slist* rcpt = nullptr;
  for (const auto& t : m.to)
    rcpt = curl_slist_append(rcpt, ("<" + t + ">").c_str());
  ReadState rs{&m.data};
  curl_easy_setopt(c, CURLOPT_URL, m.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, ("<" + m.from + ">").c_str());
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, ReadPayload);
  curl_easy_setopt(c, CURLOPT_READDATA, &rs);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_seconds * 1000));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  SetCancel(c, cancel);
  if (m.require_tls)
    curl_easy_setopt(c, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
  if (!m.username.empty()) {
    curl_easy_setopt(c, CURLOPT_USERNAME, m.username.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, m.password.c_str());
  }
  const CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    r.status = 250;  // accepted (libcurl fails the transfer on any other final reply)
  } else {
    r.error = curl_easy_strerror(rc);
  }
  curl_slist_free_all(rcpt);
  curl_easy_cleanup(c);
  return r;
}

std::string RedactUrl(const std::string& url) {
  std::string out = url;
  const size_t scheme = out.find("://");
  const size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  const size_t slash = out.find('/', start);
  const size_t at = out.rfind('@', slash == std::string::npos ? out.size() : slash);
  if (at != std::string::npos && at >= start)
    out.erase(start, at + 1 - start);
  const size_t q = out.find('?');
  if (q != std::string::npos)
    out = out.substr(0, q) + "?…";
  // Webhook URLs carry their secret in the path (Slack: /services/T/B/secret): keep the host only.
  const size_t path = out.find('/', start);
  if (path != std::string::npos && out.size() > path + 1)
    out = out.substr(0, path) + "/…";
  return out;
}

}  // namespace stalk
