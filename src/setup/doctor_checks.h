// Stalk — Celery monitoring server.
// DoctorChecks: the individual checks of `stalk doctor` that need no event stream — Redis
// reachability (broker and result backend), the store file's health (SQLite quick_check, read-only)
// and whether auth is configured for a non-loopback bind — plus the Check record they all return and
// its printing. Each check says what it saw and, when it is not a PASS, the fix.
#pragma once

#include "transport/broker_url.h"

#include <string>
#include <vector>

namespace stalk {

enum class CheckStatus { kPass, kWarn, kFail, kSkip };

struct Check {
  std::string name;  // "broker reachable"
  CheckStatus status = CheckStatus::kPass;
  std::string detail;  // what was seen
  std::string fix;     // what to do ("" for PASS)
};

// "PASS  name  detail\n      fix: ...\n"
std::string FormatCheck(const Check& c);

// Connects to a redis:// URL and sends PING; the detail names the Redis version. `what` is the
// check's name ("broker reachable", "result backend reachable").
Check CheckRedisReachable(const std::string& what, const std::string& url_text, int timeout_ms);
// RabbitMQ: connects and logs in (user, password, vhost).
Check CheckAmqpReachable(const std::string& what, const BrokerUrl& url, int timeout_ms);

// The result backend URL: redis → reachable check; rpc:// / empty → SKIP with the reason; others → SKIP.
Check CheckResultBackend(const std::string& url_text, const std::string& broker_text, int timeout_ms);

// The store: "" / "none" → SKIP; postgresql:// → SKIP; an existing SQLite file → quick_check;
// a missing one → its folder must be writable.
Check CheckStore(const std::string& db);

// Auth for `address`: loopback passes; anything else needs one of the auth settings in the
// environment (STALK_/FLOWER_ BASIC_AUTH, BASIC_AUTH_FILE, API_TOKENS_FILE, AUTH).
Check CheckAuth(const std::string& address);

}  // namespace stalk
