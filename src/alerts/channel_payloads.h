// Stalk — Celery monitoring server.
// What each channel receives for one AlertNotice: pure functions from notice to request body, so the
// formats are unit-tested without sockets. Formats follow each receiver's documented API:
// Slack incoming webhooks ({"text", "attachments"}), PagerDuty Events API v2 (trigger/resolve with
// dedup_key = fingerprint), Alertmanager's POST /api/v2/alerts (a list of postableAlert), a generic
// JSON webhook (Stalk's own shape, Alertmanager-webhook-like), and an RFC 5322 email.
// A notification is a group (alert_notice.h AlertGroupNotice): Slack, webhook, Alertmanager and email
// get one request listing every alert of the group; PagerDuty gets one event per alert (the notifier
// posts each), because PagerDuty deduplicates and resolves by dedup_key, one incident per alert.
#pragma once

#include <string>

#include "alerts/alert_notice.h"

namespace stalk {

std::string SlackPayload(const AlertGroupNotice& g);
std::string PagerDutyPayload(const AlertNotice& n, const std::string& routing_key);
std::string AlertmanagerPayload(const AlertGroupNotice& g, const std::string& generator_url);
std::string WebhookPayload(const AlertGroupNotice& g);
std::string EmailMessage(const AlertGroupNotice& g, const std::string& from, const std::vector<std::string>& to,
                         double now);
// A group of one alert, for the single-alert forms above.
AlertGroupNotice GroupOfOne(const AlertNotice& n);
inline std::string SlackPayload(const AlertNotice& n) { return SlackPayload(GroupOfOne(n)); }
inline std::string AlertmanagerPayload(const AlertNotice& n, const std::string& generator_url) {
  return AlertmanagerPayload(GroupOfOne(n), generator_url);
}
inline std::string WebhookPayload(const AlertNotice& n) { return WebhookPayload(GroupOfOne(n)); }
// RFC 3339 UTC with milliseconds ("2026-12-04T21:00:48.123Z").
std::string Rfc3339(double epoch_seconds);
// Lower-case hex HMAC-SHA256 of `body` with `key` (OpenSSL).
std::string HmacSha256Hex(const std::string& key, const std::string& body);

}  // namespace stalk
