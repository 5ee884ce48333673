// Stalk — Celery monitoring server.
#include "alerts/notifier.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "alerts/channel_payloads.h"
#include "common/clock.h"
#include "common/log.h"

namespace stalk {
namespace {}  // namespace

Notifier::Notifier(std::vector<ChannelConfig> channels, NotifierOptions options)
    : channels_(std::move(channels)), options_(std::move(options)) {
  if (!options_.getenv)
    options_.getenv = [](const char* n) { return static_cast<const char*>(std::getenv(n)); };
  for (const auto& c : channels_) {
    counts_[c.name];
    lanes_.push_back(std::make_unique<Lane>());
  }
  CurlGlobalInit();
}

Notifier::~Notifier() { Stop(); }

void Notifier::Start() {
  for (auto& lane : lanes_) {
    Lane* l = lane.get();
    l->thread = std::thread([this, l] { Run(*l); });
  }
}

void Notifier::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cancel_ = true;
  }
  for (auto& lane : lanes_) {
    lane->cv.notify_all();
    if (lane->thread.joinable())
      lane->thread.join();
  }
}

void Notifier::Enqueue(const AlertNotice& n) {
  for (const auto& name : n.channels) {
    AlertGroupNotice g = GroupOfOne(n);
    g.channel = name;
    Enqueue(std::move(g));
  }
}

void Notifier::Enqueue(AlertGroupNotice g) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < channels_.size(); ++i) {
    if (channels_[i].name != g.channel)
      continue;
    Lane& lane = *lanes_[i];
    if (lane.ready.size() + lane.waiting.size() >= options_.capacity) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
    } else {
      lane.ready.push_back(Job{&channels_[i], std::move(g), 0, 0});
      lane.cv.notify_one();
    }
    return;
  }
}

std::string Notifier::Env(const std::string& name) const {
  if (name.empty())
    return {};
  const char* v = options_.getenv(name.c_str());
  return v ? v : "";
}

PostResult Notifier::Deliver(const Job& job) {
  const ChannelConfig& c = *job.channel;
  const AlertGroupNotice& n = job.notice;
  PostResult missing;
  const std::string url = Env(c.url_env);
  const std::map<std::string, std::string> json = {{"Content-Type", "application/json"}};
  switch (c.type) {
    case ChannelType::kSlack:
      if (url.empty())
        break;
      return HttpPost(url, json, SlackPayload(n), c.timeout, &cancel_);
    case ChannelType::kPagerDuty: {
      const std::string key = Env(c.routing_key_env);
      if (key.empty()) {
        missing.error = "environment variable " + c.routing_key_env + " is not set";
        return missing;
      }
      // One event per alert: PagerDuty opens, dedups and resolves incidents by each alert's dedup_key.
      // A retry posts them all again, which PagerDuty's dedup makes harmless.
      PostResult last;
      for (const auto& alert : n.alerts) {
        last = HttpPost(url.empty() ? "https://events.pagerduty.com/v2/enqueue" : url, json,
                        PagerDutyPayload(alert, key), c.timeout, &cancel_);
        if (!last.ok())
          break;
      }
      return last;
    }
    case ChannelType::kAlertmanager: {
      if (url.empty())
        break;
      std::string base = url;
      while (!base.empty() && base.back() == '/')
        base.pop_back();
      if (!base.ends_with("/api/v2/alerts"))
        base += "/api/v2/alerts";
      return HttpPost(base, json, AlertmanagerPayload(n, options_.generator_url), c.timeout, &cancel_);
    }
    case ChannelType::kWebhook: {
      if (url.empty())
        break;
      auto headers = json;
      const std::string body = WebhookPayload(n);
      const std::string secret = Env(c.secret_env);
      if (!secret.empty()) {
        const std::string ts = std::to_string(static_cast<int64_t>(UnixSeconds()));
        headers["X-Stalk-Timestamp"] = ts;
        // Signed over "<timestamp>.<body>", so a captured request cannot be replayed with another time.
        headers["X-Stalk-Signature"] = "sha256=" + HmacSha256Hex(secret, ts + "." + body);
      }
      return HttpPost(url, headers, body, c.timeout, &cancel_);
    }
    case ChannelType::kEmail: {
      if (url.empty())
        break;
      SmtpMessage m;
      m.url = url;
      m.from = c.from;
      m.to = c.to;
      m.data = EmailMessage(n, c.from, c.to, UnixSeconds());
      m.username = Env(c.username_env);
      m.password = Env(c.password_env);
      m.require_tls = c.starttls;
      return SmtpSend(m, c.timeout, &cancel_);
    }
  }
  missing.error = "environment variable " + c.url_env + " is not set";
  return missing;
}

void Notifier::Run(Lane& lane) {
  auto log = Logger("alerts");
  std::unique_lock lock(mu_);
  for (;;) {
    const double now = UnixSeconds();
    if (stop_) {
      dropped_.fetch_add(lane.ready.size() + lane.waiting.size(), std::memory_order_relaxed);
      lane.ready.clear();
      lane.waiting.clear();
      return;
    }
    // Move due retries to the ready queue.
    for (auto it = lane.waiting.begin(); it != lane.waiting.end();) {
      if (it->due <= now) {
        lane.ready.push_back(std::move(*it));
        it = lane.waiting.erase(it);
      } else {
        ++it;
      }
    }
    if (lane.ready.empty()) {
      double next = now + 3600;
      for (const auto& j : lane.waiting)
        next = std::min(next, j.due);
      lane.cv.wait_for(lock, std::chrono::duration<double>(next - now));
      continue;
    }
    Job job = std::move(lane.ready.front());
    lane.ready.pop_front();
    lock.unlock();
    const PostResult r = Deliver(job);
    lock.lock();
    auto& counts = counts_[job.channel->name];
    if (r.ok()) {
      ++counts.success;
      log->debug("alert group {} ({}, {} alerts) delivered to {}", job.notice.group_key, job.notice.status,
                 job.notice.alerts.size(), job.channel->name);
      continue;
    }
    const std::string why = r.status ? "HTTP " + std::to_string(r.status) : r.error;
    // 4xx other than 408/429 will not succeed on retry (bad payload, bad key).
    const bool permanent = r.status >= 400 && r.status < 500 && r.status != 408 && r.status != 429;
    if (!permanent && !stop_ && job.attempt < job.channel->max_retries) {
      ++counts.retry;
      double delay = std::min(options_.backoff_max, options_.backoff_initial * std::pow(2.0, job.attempt));
      delay = std::max(delay, std::min(r.retry_after, options_.backoff_max));
      ++job.attempt;
      job.due = UnixSeconds() + delay;
      log->warn("alert group {} to channel {} failed ({}); retry {} in {:.1f}s", job.notice.group_key,
                job.channel->name, why, job.attempt, delay);
      lane.waiting.push_back(std::move(job));
    } else {
      ++counts.failure;
      log->error("alert group {} to channel {} failed ({}); giving up after {} attempts", job.notice.group_key,
                 job.channel->name, why, job.attempt + 1);
    }
  }
}

std::map<std::string, Notifier::Counts> Notifier::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

void Notifier::RenderMetrics(std::string& out, bool openmetrics) const {
  const auto c = counts();
  const char* total = openmetrics ? "" : "_total";
  out += "# HELP stalk_alert_notifications" + std::string(total) + " Alert deliveries by channel and result.\n";
  out += "# TYPE stalk_alert_notifications" + std::string(total) + " counter\n";
  for (const auto& [name, k] : c) {
    for (auto [result, v] :
         {std::pair{"success", k.success}, std::pair{"failure", k.failure}, std::pair{"retry", k.retry}}) {
      out += "stalk_alert_notifications_total{channel=\"" + name + "\",result=\"" + result + "\"} " +
             std::to_string(v) + "\n";
    }
  }
  out += "# HELP stalk_alert_notification_dropped" + std::string(total) +
         " Alert deliveries dropped because the notifier queue was full.\n";
  out += "# TYPE stalk_alert_notification_dropped" + std::string(total) + " counter\n";
  out += "stalk_alert_notification_dropped_total " + std::to_string(dropped()) + "\n";
}

}  // namespace stalk
