// Stalk — Celery monitoring server.
// redis_publisher: the load side of the end-to-end benchmark (bench/e2e_redis.sh). Publishes a
// realistic Celery event stream to a local redis-server at a target rate of events per second, as
// kombu does: PUBLISH "/<db>.celeryev/<routing_key>" with the kombu envelope as payload.
//
//   redis_publisher --port 6390 --rate 200000 --duration 30 [--db 0] [--pool_tasks 50000] [--batch 256]
//
// The messages come from bench/synthetic_stream.h (envelopes byte-for-byte as celery 5.2 / kombu 5.2
// publish them; the routing key is the envelope's delivery_info.routing_key) and are pre-encoded as
// RESP commands, so publishing is a memcpy. The pool is replayed in cycles; each cycle rewrites the
// first 8 hex digits of every task id inside the base64 body (a consistent function of the id and
// the cycle number), so every cycle creates new tasks as a live fleet would, at no encoding cost.
// Pacing: every millisecond, as many messages as the target cumulative event count asks for, sent
// in pipelined writes of --batch commands; replies (receiver counts) are read without blocking. A
// reply of 0 receivers means no subscriber got the message (Stalk was cut off or not subscribed).
// Prints one line of key=value figures; never asserts anything.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/base64.h"
#include "protocol/event_decoder.h"
#include "synthetic_stream.h"
#include "transport/redis_connection.h"

using namespace stalk;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int port = 0;
  int db = 0;
  double rate = 100000;  // events per second
  double duration = 30;  // seconds
  size_t pool_tasks = 50000;
  size_t batch = 256;               // commands per write
  size_t max_outstanding = 500000;  // replies not yet read before the publisher blocks on them
};

// One 4-character base64 group of the body that covers hex digits 0..7 of a task id.
struct PatchSite {
  uint32_t offset = 0;          // of the group in the RESP command
  uint8_t original[3]{};        // the decoded bytes of the group in the pool's stream
  int8_t digit[3]{-1, -1, -1};  // which of the id's first 8 hex digits each byte is; -1: not one
};

struct Prebuilt {
  std::string resp;  // *3 PUBLISH channel envelope, RESP-encoded
  uint32_t events = 0;
  std::vector<PatchSite> sites;
};

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kBodyPrefix = "{\"body\": \"";

int HexValue(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

bool IsUuidAt(std::string_view s, size_t p) {
  if (p + 36 > s.size())
    return false;
  for (size_t i = 0; i < 36; ++i) {
    const char c = s[p + i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-')
        return false;
    } else if (HexValue(c) < 0) {
      return false;
    }
  }
  return true;
}

std::string RoutingKey(std::string_view envelope) {
  constexpr std::string_view kKey = "\"routing_key\": \"";
  const size_t p = envelope.rfind(kKey);
  if (p == std::string_view::npos)
    return "";
  const size_t start = p + kKey.size();
  const size_t end = envelope.find('"', start);
  return std::string(envelope.substr(start, end - start));
}

void AppendBulk(std::string& out, std::string_view s) {
  out += '$';
  out += std::to_string(s.size());
  out += "\r\n";
  out.append(s);
  out += "\r\n";
}

Prebuilt Prebuild(const RawMessage& m, int db, EventDecoder& decoder) {
  Prebuilt p;
  const std::string_view envelope = m.payload;
  p.events = static_cast<uint32_t>(decoder.DecodeKombuEnvelope(
      envelope, [](const Event&) {}, [](RejectReason, std::string_view) {}));
  const std::string channel = "/" + std::to_string(db) + ".celeryev/" + RoutingKey(envelope);
  p.resp = "*3\r\n$7\r\nPUBLISH\r\n";
  AppendBulk(p.resp, channel);
  p.resp += '$' + std::to_string(envelope.size()) + "\r\n";
  const size_t envelope_at = p.resp.size();
  p.resp.append(envelope);
  p.resp += "\r\n";
  if (!envelope.starts_with(kBodyPrefix))
    return p;
  const size_t b64_start = kBodyPrefix.size();
  const size_t b64_end = envelope.find('"', b64_start);
  std::string body;
  if (b64_end == std::string_view::npos || !Base64Decode(envelope.substr(b64_start, b64_end - b64_start), body)) {
    return p;
  }
  for (size_t at = 0; at + 36 <= body.size(); ++at) {
    if (!IsUuidAt(body, at))
      continue;
    for (size_t g = at / 3; g * 3 < at + 8; ++g) {
      if (g * 3 + 3 > body.size())
        break;  // a partial final group never holds an id
      PatchSite site;
      site.offset = static_cast<uint32_t>(envelope_at + b64_start + g * 4);
      for (size_t k = 0; k < 3; ++k) {
        const size_t byte = g * 3 + k;
        site.original[k] = static_cast<uint8_t>(body[byte]);
        if (byte >= at && byte < at + 8)
          site.digit[k] = static_cast<int8_t>(byte - at);
      }
      p.sites.push_back(site);
    }
    at += 35;
  }
  return p;
}

// Rewrites the patched groups of `p` for pool cycle `cycle` (0 restores the original ids).
void ApplyCycle(Prebuilt& p, uint32_t cycle) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const PatchSite& s : p.sites) {
    uint8_t b[3];
    for (int k = 0; k < 3; ++k) {
      b[k] = s.original[k];
      if (s.digit[k] >= 0) {
        const uint32_t add = (cycle >> (4 * s.digit[k])) & 0xF;
        b[k] = static_cast<uint8_t>(kHex[(static_cast<uint32_t>(HexValue(static_cast<char>(b[k]))) + add) & 0xF]);
      }
    }
    char* out = p.resp.data() + s.offset;
    out[0] = kB64[b[0] >> 2];
    out[1] = kB64[((b[0] & 3) << 4) | (b[1] >> 4)];
    out[2] = kB64[((b[1] & 0xF) << 2) | (b[2] >> 6)];
    out[3] = kB64[b[2] & 0x3F];
  }
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--port")
      o.port = std::atoi(v);
    else if (k == "--db")
      o.db = std::atoi(v);
    else if (k == "--rate")
      o.rate = std::atof(v);
    else if (k == "--duration")
      o.duration = std::atof(v);
    else if (k == "--pool_tasks")
      o.pool_tasks = static_cast<size_t>(std::atol(v));
    else if (k == "--batch")
      o.batch = static_cast<size_t>(std::atol(v));
    else
      return false;
  }
  return argc % 2 == 1 && o.port > 0 && o.rate > 0 && o.duration > 0 && o.duration <= 3600 && o.batch > 0 &&
         o.pool_tasks > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: redis_publisher --port P --rate EVENTS_PER_S --duration S [--db N] [--pool_tasks N] "
                 "[--batch N]\n(publishes to redis on 127.0.0.1 only)\n");
    return 2;
  }
  // ---- build the pool ----
  bench::StreamOptions so;
  so.tasks = o.pool_tasks;
  auto stream = bench::MakeStream(so);
  std::vector<Prebuilt> pool;
  pool.reserve(stream.messages.size());
  EventDecoder decoder;
  size_t pool_events = 0;
  for (const RawMessage& m : stream.messages) {
    pool.push_back(Prebuild(m, o.db, decoder));
    pool_events += pool.back().events;
  }
  stream.messages.clear();
  stream.messages.shrink_to_fit();
  std::fprintf(stderr, "redis_publisher: pool of %zu messages, %zu events (%zu tasks)\n", pool.size(), pool_events,
               o.pool_tasks);

  BrokerUrl url;
  url.host = "127.0.0.1";
  url.port = o.port;
  RedisConnection conn;
  if (auto r = conn.Connect(url, 3000, /*select_db=*/false); !r) {
    std::fprintf(stderr, "redis_publisher: %s\n", r.error().c_str());
    return 1;
  }

  // ---- publish ----
  uint64_t events = 0, messages = 0, bytes = 0, outstanding = 0, zero_receivers = 0, zero_receiver_events = 0;
  std::vector<uint32_t> in_flight_events;  // events per unacknowledged message, FIFO (ring)
  in_flight_events.resize(o.max_outstanding + o.batch);
  size_t ring_head = 0;  // oldest unacknowledged message
  size_t next = 0;
  uint32_t cycle = 0;
  std::string out;
  out.reserve(o.batch * 1600);
  auto read_replies = [&](int timeout_ms) -> bool {
    while (outstanding > 0) {
      auto r = conn.ReadReply(timeout_ms);
      if (!r) {
        std::fprintf(stderr, "redis_publisher: %s\n", r.error().c_str());
        return false;
      }
      if (!*r)
        return true;
      const uint32_t ev = in_flight_events[ring_head];
      ring_head = (ring_head + 1) % in_flight_events.size();
      --outstanding;
      if ((*r)->type == REDIS_REPLY_INTEGER && (*r)->integer == 0) {
        ++zero_receivers;
        zero_receiver_events += ev;
      }
      timeout_ms = 0;
    }
    return true;
  };
  const double cpu0 = CpuSeconds();
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration));
  auto tick = start;
  bool ok = true;
  while (ok) {
    const auto now = Clock::now();
    if (now >= stop_at)
      break;
    const double elapsed = std::chrono::duration<double>(now - start).count();
    const auto target = static_cast<uint64_t>(o.rate * elapsed);
    while (events < target && ok) {
      size_t n = 0;
      out.clear();
      while (events < target && n < o.batch) {
        Prebuilt& p = pool[next];
        ApplyCycle(p, cycle);
        out += p.resp;
        in_flight_events[(ring_head + outstanding + n) % in_flight_events.size()] = p.events;
        events += p.events;
        ++n;
        if (++next == pool.size()) {
          next = 0;
          ++cycle;
        }
      }
      if (auto s = conn.SendRaw(out); !s) {
        std::fprintf(stderr, "redis_publisher: %s\n", s.error().c_str());
        ok = false;
        break;
      }
      messages += n;
      bytes += out.size();
      outstanding += n;
      ok = read_replies(0);
      for (int waits = 0; ok && outstanding >= o.max_outstanding; ++waits) {
        if (waits == 30) {
          std::fprintf(stderr, "redis_publisher: Redis stopped answering\n");
          ok = false;
        } else {
          ok = read_replies(1000);
        }
      }
    }
    tick += std::chrono::milliseconds(1);
    if (tick > Clock::now()) {
      std::this_thread::sleep_until(tick);
    } else {
      tick = Clock::now();
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // Wait (bounded) for the last replies, so zero-receiver counts are complete.
  const auto drain_deadline = Clock::now() + std::chrono::seconds(30);
  while (ok && outstanding > 0 && Clock::now() < drain_deadline) {
    ok = read_replies(500);
  }
  std::printf(
      "published events=%llu messages=%llu bytes=%llu seconds=%.3f rate=%.0f msg_rate=%.0f "
      "zero_receiver_messages=%llu zero_receiver_events=%llu unacknowledged=%llu publisher_cpu_seconds=%.2f\n",
      static_cast<unsigned long long>(events), static_cast<unsigned long long>(messages),
      static_cast<unsigned long long>(bytes), seconds, static_cast<double>(events) / seconds,
      static_cast<double>(messages) / seconds, static_cast<unsigned long long>(zero_receivers),
      static_cast<unsigned long long>(zero_receiver_events), static_cast<unsigned long long>(outstanding),
      CpuSeconds() - cpu0);
  std::fflush(stdout);
  return ok ? 0 : 1;
}
