// Stalk — Celery monitoring server.
// DoctorChecks (see doctor_checks.h).
#include "setup/doctor_checks.h"

#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "transport/amqp_connection.h"
#include "transport/broker_url.h"
#include "transport/redis_connection.h"

namespace stalk {
namespace fs = std::filesystem;

std::string FormatCheck(const Check& c) {
  static const char* kLabel[] = {"PASS", "WARN", "FAIL", "SKIP"};
  std::string out = std::string(kLabel[static_cast<int>(c.status)]) + "  " + c.name;
  if (out.size() < 34)
    out.resize(34, ' ');
  out += " " + c.detail + "\n";
  if (!c.fix.empty() && c.status != CheckStatus::kPass)
    out += "      fix: " + c.fix + "\n";
  return out;
}

Check CheckAmqpReachable(const std::string& what, const BrokerUrl& url, int timeout_ms) {
  AmqpConnection conn;
  AmqpConnectOptions opts;
  opts.connect_timeout_ms = timeout_ms;
  opts.rpc_timeout_ms = timeout_ms;
  if (auto r = conn.Connect(url, opts); !r) {
    return {what, CheckStatus::kFail, r.error(),
            "start RabbitMQ or correct the URL (user, password, vhost); check firewalls between here and it"};
  }
  conn.Close();
  return {what, CheckStatus::kPass, url.Redacted() + " accepts the login", ""};
}

Check CheckRedisReachable(const std::string& what, const std::string& url_text, int timeout_ms) {
  Check c{what};
  auto url = ParseBrokerUrl(url_text);
  if (!url) {
    return {what, CheckStatus::kFail, "bad URL: " + url.error(), "give a URL like redis://host:6379/0"};
  }
  if (url->kind != BrokerUrl::Kind::kRedis) {
    return {what, CheckStatus::kSkip, "not supported: this build checks Redis only (" + url->Redacted() + ")", ""};
  }
  RedisConnection conn;
  if (auto r = conn.Connect(*url, timeout_ms, true); !r) {
    return {what, CheckStatus::kFail, url->Redacted() + ": " + r.error(),
            "start Redis or correct the URL (host, port, password, db); check firewalls between here and Redis"};
  }
  auto info = conn.Command({"INFO", "server"}, timeout_ms);
  std::string version;
  if (info && *info && ((*info)->type == REDIS_REPLY_STRING)) {
    std::string text((*info)->str, (*info)->len);
    auto pos = text.find("redis_version:");
    if (pos != std::string::npos)
      version = text.substr(pos + 14, text.find_first_of("\r\n", pos) - pos - 14);
  }
  auto pong = conn.Command({"PING"}, timeout_ms);
  if (!pong) {
    return {what, CheckStatus::kFail, url->Redacted() + ": PING failed: " + pong.error(),
            "check Redis's health and load"};
  }
  c.detail = url->Redacted() + " answers PING" + (version.empty() ? "" : " (Redis " + version + ")");
  return c;
}

Check CheckResultBackend(const std::string& url_text, const std::string& broker_text, int timeout_ms) {
  const std::string name = "result backend reachable";
  std::string url = url_text;
  if (url.empty()) {
    if (broker_text.rfind("redis", 0) != 0) {
      return {name, CheckStatus::kSkip, "no --result-backend given", "pass --result-backend URL to check it"};
    }
    url = broker_text;  // Stalk's default: the broker
  }
  if (url.rfind("rpc://", 0) == 0) {
    return {name, CheckStatus::kSkip, "rpc:// backend: results travel over the broker (checked above)", ""};
  }
  if (url.rfind("redis", 0) != 0) {
    return {name, CheckStatus::kSkip, "not supported: doctor checks Redis result backends only", ""};
  }
  return CheckRedisReachable(name, url, timeout_ms);
}

Check CheckStore(const std::string& db) {
  const std::string name = "store health";
  if (db.empty() || db == "none")
    return {name, CheckStatus::kSkip, "no store (memory only)", ""};
  if (db.rfind("postgres", 0) == 0) {
    return {name, CheckStatus::kSkip, "PostgreSQL store: not checked by doctor", "stalk serve reports it at start-up"};
  }
  std::error_code ec;
  if (!fs::exists(db, ec)) {
    fs::path dir = fs::absolute(db, ec).parent_path();
    if (::access(dir.c_str(), W_OK) != 0) {
      return {name, CheckStatus::kFail, db + " does not exist and " + dir.string() + " is not writable",
              "point --db at a writable folder, or fix the folder's owner"};
    }
    return {name, CheckStatus::kPass, db + " does not exist yet; stalk serve will create it", ""};
  }
  sqlite3* handle = nullptr;
  const std::string uri = "file:" + db + "?mode=ro";
  if (sqlite3_open_v2(uri.c_str(), &handle, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) != SQLITE_OK) {
    std::string err = handle ? sqlite3_errmsg(handle) : "out of memory";
    sqlite3_close(handle);
    return {name, CheckStatus::kFail, db + ": cannot open: " + err, "check the file's permissions"};
  }
  sqlite3_busy_timeout(handle, 2000);
  sqlite3_stmt* stmt = nullptr;
  std::string result;
  int rc = sqlite3_prepare_v2(handle, "PRAGMA quick_check", -1, &stmt, nullptr);
  while (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    if (!result.empty())
      result += "; ";
    result += text ? reinterpret_cast<const char*>(text) : "";
    if (result.size() > 300)
      break;
  }
  if (rc != SQLITE_OK)
    result = sqlite3_errmsg(handle);
  sqlite3_finalize(stmt);
  sqlite3_close(handle);
  if (result != "ok") {
    return {name, CheckStatus::kFail, db + ": quick_check: " + result,
            "stop stalk, move the file aside (it is a cache of history) and let stalk serve start a new one"};
  }
  return {name, CheckStatus::kPass,
          db + ": SQLite quick_check ok (" + std::to_string(fs::file_size(db, ec) >> 20) + " MB)", ""};
}

Check CheckAuth(const std::string& address) {
  const std::string name = "auth for the bind address";
  if (address.empty() || address == "localhost" || address == "::1" || address.rfind("127.", 0) == 0) {
    return {name, CheckStatus::kPass,
            "binds " + (address.empty() ? std::string("127.0.0.1") : address) + " (loopback only)", ""};
  }
  for (const char* var : {"STALK_BASIC_AUTH", "FLOWER_BASIC_AUTH", "STALK_BASIC_AUTH_FILE", "FLOWER_BASIC_AUTH_FILE",
                          "STALK_API_TOKENS_FILE", "STALK_AUTH", "FLOWER_AUTH"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0')
      return {name, CheckStatus::kPass, "binds " + address + "; " + var + " is set", ""};
  }
  return {name, CheckStatus::kFail, "binds " + address + " with no auth setting in the environment",
          "set STALK_BASIC_AUTH_FILE (users from `stalk hash-password`) or STALK_BASIC_AUTH, or bind 127.0.0.1 "
          "behind a proxy that authenticates"};
}

}  // namespace stalk
