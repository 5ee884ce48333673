// Stalk — Celery monitoring server.
#include "synthetic_stream.h"

#include <algorithm>

#include <cstdio>
#include <random>

#include "common/base64.h"
#include "common/task_id.h"
#include "protocol/event_decoder.h"

namespace stalk::bench {
namespace {

constexpr const char* kNames[] = {"proj.tasks.add",           "proj.tasks.send_email", "proj.tasks.resize_image",
                                  "proj.billing.charge_card", "proj.reports.nightly",  "proj.sync.import_rows",
                                  "proj.tasks.cleanup",       "proj.notify.push"};

std::string Envelope(const std::string& body, const std::string& hostname, const std::string& routing_key,
                     std::mt19937_64& rng) {
  Uuid tag;
  for (auto& b : tag)
    b = static_cast<uint8_t>(rng());
  std::string e = "{\"body\": \"" + Base64Encode(body) +
                  "\", \"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", "
                  "\"headers\": {\"hostname\": \"" +
                  hostname +
                  "\"}, \"properties\": {\"delivery_mode\": 1, \"delivery_info\": {\"exchange\": \"celeryev\", "
                  "\"routing_key\": \"" +
                  routing_key + "\"}, \"priority\": 0, \"body_encoding\": \"base64\", \"delivery_tag\": \"" +
                  FormatUuid(tag) + "\"}}";
  PadForDecoding(e);  // as the Redis transport does
  return e;
}

std::string Num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

}  // namespace

Stream MakeStream(const StreamOptions& o) {
  Stream out;
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<std::string> workers;
  std::vector<int64_t> clocks(o.workers, 1);
  for (size_t i = 0; i < o.workers; ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "celery@worker-%03zu.prod.example.com", i);
    workers.emplace_back(buf);
  }
  const std::string traceback =
      "Traceback (most recent call last):\n  File \"/usr/lib/python3/dist-packages/celery/app/trace.py\", line 451, "
      "in trace_task\n    R = retval = fun(*args, **kwargs)\n  File \"/srv/proj/billing.py\", line 88, in "
      "charge_card\n    raise ValueError(f\"card declined: {card_id}\")\nValueError: card declined: 4242\n";
  double now = o.start_time;
  const double step = 1.0 / o.tasks_per_second;
  double next_heartbeat = now;
  int64_t client_clock = 1;
  auto common = [&](const std::string& host, int64_t clock, double ts, const char* type) {
    return "\"hostname\": \"" + host + "\", \"utcoffset\": 0, \"pid\": 4242, \"clock\": " + std::to_string(clock) +
           ", \"timestamp\": " + Num(ts) + ", \"type\": \"" + type + "\"";
  };
  for (size_t i = 0; i < o.tasks; ++i) {
    now += step;
    if (now >= next_heartbeat) {
      for (size_t w = 0; w < o.workers; ++w) {
        std::string body = "{" + common(workers[w], ++clocks[w], now, "worker-heartbeat") +
                           ", \"freq\": 2.0, \"active\": 3, \"processed\": " + std::to_string(i) +
                           ", \"loadavg\": [0.53, 0.38, 0.18], \"sw_ident\": \"py-celery\", \"sw_ver\": "
                           "\"5.2.6\", \"sw_sys\": \"Linux\"}";
        out.messages.push_back({Envelope(body, workers[w], "worker.heartbeat", rng), now, {}, false});
        ++out.events;
      }
      next_heartbeat = now + 2.0;
    }
    Uuid id;
    for (auto& b : id)
      b = static_cast<uint8_t>(rng());
    id[6] = static_cast<uint8_t>((id[6] & 0x0F) | 0x40);
    const std::string uuid = FormatUuid(id);
    const char* name = kNames[rng() % std::size(kNames)];
    const size_t w = rng() % o.workers;
    const std::string& host = workers[w];
    const std::string args = "(" + std::to_string(rng() % 100000) + ", " + std::to_string(rng() % 1000) + ")";
    const std::string kwargs = rng() % 4 == 0 ? "{'priority': 'high', 'tenant': 'acme'}" : "{}";
    const std::string uid = "\"uuid\": \"" + uuid + "\"";
    // task-sent from the client, alone in its message.
    const std::string sent = "{" + common("gen8470@api-1", ++client_clock, now, "task-sent") + ", " + uid +
                             ", \"root_id\": \"" + uuid + "\", \"parent_id\": null, \"name\": \"" + name +
                             "\", \"args\": \"" + args + "\", \"kwargs\": \"" + kwargs +
                             "\", \"retries\": 0, \"eta\": null, \"expires\": null, \"queue\": \"celery\", "
                             "\"exchange\": \"\", \"routing_key\": \"celery\"}";
    out.messages.push_back({Envelope(sent, "gen8470@api-1", "task.sent", rng), now, {}, false});
    const double t_recv = now + 0.002, t_start = now + 0.004, t_end = now + 0.004 + 0.01 + unit(rng) * 0.2;
    const std::string received = "{" + common(host, ++clocks[w], t_recv, "task-received") + ", " + uid +
                                 ", \"name\": \"" + name + "\", \"args\": \"" + args + "\", \"kwargs\": \"" + kwargs +
                                 "\", \"root_id\": \"" + uuid +
                                 "\", \"parent_id\": null, \"retries\": 0, \"eta\": null, \"expires\": null}";
    const std::string started = "{" + common(host, ++clocks[w], t_start, "task-started") + ", " + uid + "}";
    std::string finished;
    const double r = unit(rng);
    std::string retry_msgs;
    if (r < o.fail_ratio) {
      finished = "{" + common(host, ++clocks[w], t_end, "task-failed") + ", " + uid +
                 ", \"exception\": \"ValueError('card declined: 4242')\", \"traceback\": \"" + std::string([&] {
                   std::string esc;
                   for (char c : traceback) {
                     if (c == '\n')
                       esc += "\\n";
                     else if (c == '"')
                       esc += "\\\"";
                     else
                       esc += c;
                   }
                   return esc;
                 }()) +
                 "\"}";
    } else {
      finished = "{" + common(host, ++clocks[w], t_end, "task-succeeded") + ", " + uid + ", \"result\": \"" +
                 std::to_string(rng() % 1000) + "\", \"runtime\": " + Num(t_end - t_start) + "}";
    }
    // Grouped as a prefork worker flushes: received+started, then (retried) and the final event.
    out.messages.push_back(
        {Envelope("[" + received + ", " + started + "]", host, "task.multi", rng), t_start, {}, false});
    out.events += 3;
    if (r >= o.fail_ratio && r < o.fail_ratio + o.retry_ratio) {
      const std::string retried = "{" + common(host, ++clocks[w], t_start + 0.001, "task-retried") + ", " + uid +
                                  ", \"exception\": \"RuntimeError('transient')\", \"traceback\": \"...\"}";
      const std::string again = "{" + common(host, ++clocks[w], t_start + 0.002, "task-received") + ", " + uid +
                                ", \"name\": \"" + name + "\", \"args\": \"" + args + "\", \"kwargs\": \"" + kwargs +
                                "\", \"retries\": 1, \"root_id\": \"" + uuid + "\", \"parent_id\": \"" + uuid + "\"}";
      out.messages.push_back(
          {Envelope("[" + retried + ", " + again + "]", host, "task.multi", rng), t_start + 0.002, {}, false});
      out.events += 2;
    }
    out.messages.push_back({Envelope("[" + finished + "]", host, "task.multi", rng), t_end, {}, false});
    ++out.events;
  }
  return out;
}

size_t ApplyAll(IngestPipeline& pipeline, std::vector<RawMessage>& msgs) {
  size_t events = 0;
  std::vector<RawMessage> batch;
  for (size_t i = 0; i < msgs.size(); i += 256) {
    const size_t end = std::min(msgs.size(), i + 256);
    batch.assign(std::make_move_iterator(msgs.begin() + static_cast<long>(i)),
                 std::make_move_iterator(msgs.begin() + static_cast<long>(end)));
    events += pipeline.ApplyBatch(batch);
    for (size_t k = 0; k < batch.size(); ++k)
      msgs[i + k] = std::move(batch[k]);
  }
  return events;
}

}  // namespace stalk::bench
