// Stalk — Celery monitoring server.
// Notifier: delivers AlertNotices to their channels, one delivery thread per channel, so a receiver
// that hangs delays only its own channel. Enqueue never blocks: past `capacity` queued deliveries for
// a channel a notice is dropped and counted (stalk_alert_notification_dropped_total).
// Each delivery has a total timeout; a failure is retried with exponential backoff (1 s, 2 s, 4 s…)
// up to the channel's max_retries, without holding up other deliveries — retries wait in a
// time-ordered list, not in a sleep. Outcomes are counted per channel and result
// (stalk_alert_notifications_total{channel, result="success|failure|retry"}).
// Secrets (URLs, routing keys, passwords) are read from the environment when a delivery is made and
// never logged.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "alerts/alert_config.h"
#include "alerts/alert_notice.h"
#include "alerts/curl_client.h"

namespace stalk {

struct NotifierOptions {
  size_t capacity = 1024;      // queued deliveries per channel
  double backoff_initial = 1;  // seconds before the first retry; doubles each time
  double backoff_max = 60;
  std::string generator_url;  // Alertmanager's generatorURL (Stalk's /alerts page), optional
  // Environment lookup (tests inject); default getenv.
  std::function<const char*(const char*)> getenv;
};

class Notifier {
 public:
  Notifier(std::vector<ChannelConfig> channels, NotifierOptions options);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  void Start();
  // Stops promptly: the delivery in flight is aborted, queued ones are dropped (counted as dropped).
  void Stop();
  // Queues one delivery per channel of `n` (a group of one); never blocks.
  void Enqueue(const AlertNotice& n);
  // Queues the group's delivery on its channel; never blocks.
  void Enqueue(AlertGroupNotice g);

  struct Counts {
    uint64_t success = 0, failure = 0, retry = 0;
  };
  std::map<std::string, Counts> counts() const;
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // Prometheus text for this notifier's families (no # EOF).
  void RenderMetrics(std::string& out, bool openmetrics) const;

 private:
  struct Job {
    const ChannelConfig* channel;
    AlertGroupNotice notice;
    int attempt = 0;
    double due = 0;
  };
  struct Lane {  // one channel's queue and thread
    std::deque<Job> ready;
    std::vector<Job> waiting;  // retries, by due time
    std::condition_variable cv;
    std::thread thread;
  };
  void Run(Lane& lane);
  PostResult Deliver(const Job& job);
  std::string Env(const std::string& name) const;

  std::vector<ChannelConfig> channels_;
  NotifierOptions options_;
  mutable std::mutex mu_;                     // lanes' queues, counts_, stop_
  std::vector<std::unique_ptr<Lane>> lanes_;  // by index in channels_
  bool stop_ = false;
  std::atomic<bool> cancel_{false};  // aborts the delivery in flight at Stop
  std::map<std::string, Counts> counts_;
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace stalk
