// Stalk — Celery monitoring server.
// CurlClient: the two outbound calls notifiers make, over libcurl's easy API — an HTTP(S) POST and
// an SMTP send — with a hard total timeout, so a receiver that hangs costs at most that long on the
// notifier's own thread. Errors never include URLs with credentials or request bodies.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <vector>

namespace stalk {

struct PostResult {
  long status = 0;         // HTTP status; 0 when no response (connection error, timeout)
  std::string error;       // curl's error text when status == 0
  double retry_after = 0;  // seconds from a Retry-After header (429/503), 0 when absent
  std::string body;        // first KiB of the response body
  bool ok() const { return status >= 200 && status < 300; }
};

struct SmtpMessage {
  std::string url;  // smtp://host:port or smtps://host:port
  std::string from;
  std::vector<std::string> to;
  std::string data;                // full RFC 5322 message: headers, blank line, body
  std::string username, password;  // empty: no AUTH
  bool require_tls = false;        // STARTTLS required on smtp://
};

// Initialises libcurl once per process (call before starting threads that use it).
void CurlGlobalInit();

// `cancel`, when given and set, aborts the transfer within ~100 ms (shutdown).
PostResult HttpPost(const std::string& url, const std::map<std::string, std::string>& headers, const std::string& body,
                    double timeout_seconds, const std::atomic<bool>* cancel = nullptr);
PostResult SmtpSend(const SmtpMessage& m, double timeout_seconds, const std::atomic<bool>* cancel = nullptr);

// The URL without user:password@ and with the query string replaced by "?…" (for logs).
std::string RedactUrl(const std::string& url);

}  // namespace stalk
