// Stalk — Celery monitoring server.
#include "alerts/channel_payloads.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <ctime>
#include <set>

namespace stalk {

std::string Rfc3339(double epoch_seconds) {
  const auto secs = static_cast<time_t>(std::floor(epoch_seconds));
  const int ms = static_cast<int>((epoch_seconds - std::floor(epoch_seconds)) * 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // room for any int the compiler can imagine in each field
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

AlertGroupNotice GroupOfOne(const AlertNotice& n) {
  AlertGroupNotice g;
  g.channel = n.channels.empty() ? std::string() : n.channels.front();
  for (const auto& name : n.group_by) {
    auto it = n.labels.find(name);
    g.group_labels[name] = it == n.labels.end() ? std::string() : it->second;
  }
  g.status = n.status;
  g.alerts.push_back(n);
  return g;
}

namespace {

// "[FIRING] WorkerOffline (critical)", "[FIRING:2] WorkerOffline (critical)", "[RESOLVED] ...".
std::string Headline(const AlertGroupNotice& g) {
  const bool firing = g.status == "firing";
  std::string head = firing ? "[FIRING" : "[RESOLVED";
  const size_t n = firing ? g.firing() : g.alerts.size();
  if (g.alerts.size() > 1)
    head += ":" + std::to_string(n);
  head += "] ";
  std::set<std::string> rules, severities;
  for (const auto& a : g.alerts) {
    rules.insert(a.rule);
    severities.insert(a.severity);
  }
  std::string names, sev;
  for (const auto& r : rules)
    names += (names.empty() ? "" : ", ") + r;
  for (const auto& s : severities)
    sev += (sev.empty() ? "" : ", ") + s;
  return head + names + " (" + sev + ")";
}

}  // namespace

std::string SlackPayload(const AlertGroupNotice& g) {
  const bool firing = g.status == "firing";
  std::string text = std::string(firing ? ":rotating_light: " : ":white_check_mark: ") + Headline(g);
  nlohmann::json atts = nlohmann::json::array();
  for (const auto& n : g.alerts) {
    const bool this_firing = n.status == "firing";
    text +=
        g.alerts.size() == 1 ? ": " + n.summary : std::string("\n• ") + (this_firing ? "" : "[resolved] ") + n.summary;
    std::string fields;
    for (const auto& [k, v] : n.labels) {
      if (k != "alertname" && k != "severity")
        fields += "• " + k + ": `" + v + "`\n";
    }
    atts.push_back({{"color", this_firing ? (n.severity == "critical" ? "danger" : "warning") : "good"},
                    {"title", n.summary},
                    {"text", fields},
                    {"footer", "Stalk · " + n.fingerprint},
                    {"ts", static_cast<int64_t>(this_firing ? n.starts_at : n.ends_at)}});
  }
  return nlohmann::json{{"text", text}, {"attachments", atts}}.dump();
}

std::string PagerDutyPayload(const AlertNotice& n, const std::string& routing_key) {
  nlohmann::json j = {{"routing_key", routing_key},
                      {"event_action", n.status == "firing" ? "trigger" : "resolve"},
                      {"dedup_key", n.fingerprint}};
  if (n.status == "firing") {
    std::string sev = n.severity;
    if (sev != "critical" && sev != "error" && sev != "warning" && sev != "info")
      sev = "error";
    const auto src = n.labels.contains("worker")  ? n.labels.at("worker")
                     : n.labels.contains("queue") ? n.labels.at("queue")
                                                  : std::string("stalk");
    j["payload"] = {{"summary", n.summary.substr(0, 1024)},
                    {"source", src},
                    {"severity", sev},
                    {"timestamp", Rfc3339(n.starts_at)},
                    {"component", "celery"},
                    {"group", n.rule},
                    {"class", n.rule},
                    {"custom_details", {{"labels", n.labels}, {"annotations", n.annotations}, {"value", n.value}}}};
  }
  return j.dump();
}

std::string AlertmanagerPayload(const AlertGroupNotice& g, const std::string& generator_url) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& n : g.alerts) {
    nlohmann::json a = {{"labels", n.labels}, {"annotations", n.annotations}, {"startsAt", Rfc3339(n.starts_at)}};
    if (!generator_url.empty())
      a["generatorURL"] = generator_url;
    if (n.status == "resolved")
      a["endsAt"] = Rfc3339(n.ends_at);
    list.push_back(std::move(a));
  }
  return list.dump();
}

std::string WebhookPayload(const AlertGroupNotice& g) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& n : g.alerts) {
    nlohmann::json a = {{"status", n.status},           {"rule", n.rule},       {"fingerprint", n.fingerprint},
                        {"severity", n.severity},       {"summary", n.summary}, {"labels", n.labels},
                        {"annotations", n.annotations}, {"value", n.value},     {"startsAt", Rfc3339(n.starts_at)}};
    a["endsAt"] = n.ends_at > 0 ? nlohmann::json(Rfc3339(n.ends_at)) : nlohmann::json();
    list.push_back(std::move(a));
  }
  return nlohmann::json{{"version", "1"},
                        {"receiver", g.channel.empty() ? "stalk" : g.channel},
                        {"status", g.status},
                        {"groupKey", g.group_key},
                        {"groupLabels", g.group_labels},
                        {"alerts", list}}
      .dump();
}

std::string EmailMessage(const AlertGroupNotice& g, const std::string& from, const std::vector<std::string>& to,
                         double now) {
  const auto secs = static_cast<time_t>(now);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char date[64];
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  std::string rcpt;
  for (const auto& t : to)
    rcpt += (rcpt.empty() ? "" : ", ") + t;
  auto clean = [](std::string s) {  // no header injection through alert text
    for (char& c : s)
      if (c == '\r' || c == '\n')
        c = ' ';
    return s;
  };
  std::string summaries;
  for (const auto& n : g.alerts)
    summaries += (summaries.empty() ? "" : "; ") + n.summary;
  const std::string id = g.alerts.size() == 1 ? g.alerts[0].fingerprint : HmacSha256Hex("", g.group_key).substr(0, 16);
  std::string m;
  m += "Date: " + std::string(date) + "\r\n";
  m += "From: " + clean(from) + "\r\n";
  m += "To: " + clean(rcpt) + "\r\n";
  std::string head = Headline(g);
  // "[FIRING] WorkerOffline: <summary>": keep the rule right after the status, as mail filters expect.
  const size_t paren = head.rfind(" (");
  if (paren != std::string::npos)
    head.resize(paren);
  m += "Subject: " + clean(head + ": " + summaries) + "\r\n";
  m += "Message-ID: <" + id + "." + std::to_string(static_cast<int64_t>(now * 1000)) + "@stalk>\r\n";
  m += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n";
  for (const auto& n : g.alerts) {
    m += n.summary + "\r\n\r\n";
    m += "Status: " + n.status + "\r\nSeverity: " + n.severity + "\r\nStarted: " + Rfc3339(n.starts_at) + "\r\n";
    if (n.ends_at > 0)
      m += "Resolved: " + Rfc3339(n.ends_at) + "\r\n";
    m += "\r\nLabels:\r\n";
    for (const auto& [k, v] : n.labels)
      m += "  " + k + " = " + v + "\r\n";
    for (const auto& [k, v] : n.annotations)
      m += k + ": " + v + "\r\n";
    m += "\r\nFingerprint: " + n.fingerprint + "\r\n\r\n";
  }
  // SMTP dot-stuffing is libcurl's job; bare LF is normalised here.
  return m;
}

std::string HmacSha256Hex(const std::string& key, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(body.data()),
       body.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

}  // namespace stalk
