// Stalk — Celery monitoring server.
// amqp_publisher: the load side of bench/e2e_amqp.sh (end-to-end from a real rabbitmq-server).
// Publishes a realistic Celery event stream to the `celeryev` topic exchange at a target rate of
// events per second, as kombu's pyamqp transport does: the bare JSON body (no envelope, no base64),
// content_type/content_encoding and a hostname header as properties, delivery_mode 1, the event's
// routing key (celery-protocol.md §2.2).
//
//   amqp_publisher --port 5672 --rate 50000 --duration 20 [--pool_tasks 250000]
//
// The messages come from bench/synthetic_stream.h, decoded from their Redis envelopes once up front.
// The pool is published once, in order (no cycling: make it larger than rate x duration). Pacing:
// every millisecond, as many messages as the target cumulative event count asks for. RabbitMQ's
// flow control can slow the publisher below the target; `rate=` is what it achieved.
// Prints one line of key=value figures; never asserts anything.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/base64.h"
#include "protocol/event_decoder.h"
#include "synthetic_stream.h"
#include "transport/amqp_connection.h"

using namespace stalk;
using Clock = std::chrono::steady_clock;

namespace {

struct Message {
  std::string routing_key;
  std::string body;
  uint32_t events = 0;
};

std::string Field(std::string_view envelope, std::string_view key) {
  const std::string k = "\"" + std::string(key) + "\": \"";
  const size_t p = envelope.rfind(k);
  if (p == std::string_view::npos)
    return "";
  const size_t start = p + k.size();
  return std::string(envelope.substr(start, envelope.find('"', start) - start));
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  double rate = 50000, duration = 20;
  size_t pool_tasks = 250000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--port")
      port = std::atoi(argv[i + 1]);
    else if (a == "--rate")
      rate = std::atof(argv[i + 1]);
    else if (a == "--duration")
      duration = std::atof(argv[i + 1]);
    else if (a == "--pool_tasks")
      pool_tasks = static_cast<size_t>(std::atol(argv[i + 1]));
  }
  if (port <= 0) {
    std::fprintf(stderr, "usage: amqp_publisher --port P --rate EV_S --duration S [--pool_tasks N]\n");
    return 2;
  }
  bench::StreamOptions so;
  so.tasks = pool_tasks;
  auto stream = bench::MakeStream(so);
  std::vector<Message> pool;
  pool.reserve(stream.messages.size());
  EventDecoder decoder;
  for (const auto& m : stream.messages) {
    const std::string b64 = Field(m.payload, "body");
    Message out;
    out.routing_key = Field(m.payload, "routing_key");
    if (!Base64Decode(b64, out.body))
      continue;
    out.events = static_cast<uint32_t>(decoder.DecodeBody(
        "application/json", out.body, [](const Event&) {}, [](RejectReason, std::string_view) {}));
    pool.push_back(std::move(out));
  }
  stream.messages.clear();

  auto url = ParseBrokerUrl("amqp://guest:guest@127.0.0.1:" + std::to_string(port) + "//");
  AmqpConnection conn;
  AmqpConnectOptions co;
  co.heartbeat_s = 0;
  co.client_name = "stalk bench publisher";
  if (auto r = conn.Connect(*url, co); !r) {
    std::fprintf(stderr, "amqp_publisher: %s\n", r.error().c_str());
    return 1;
  }
  if (auto r = conn.DeclareExchange("celeryev", "topic", true, false); !r) {
    std::fprintf(stderr, "amqp_publisher: %s\n", r.error().c_str());
    return 1;
  }
  amqp_table_entry_t header;
  header.key = amqp_cstring_bytes("hostname");
  header.value.kind = AMQP_FIELD_KIND_UTF8;
  header.value.value.bytes = amqp_cstring_bytes("bench@publisher");
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_HEADERS_FLAG |
                 AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG;
  props.content_type = amqp_cstring_bytes("application/json");
  props.content_encoding = amqp_cstring_bytes("utf-8");
  props.headers = amqp_table_t{1, &header};
  props.delivery_mode = 1;
  props.priority = 0;

  const double cpu0 = CpuSeconds();
  const auto start = Clock::now();
  size_t next = 0;
  uint64_t events = 0, messages = 0;
  while (next < pool.size()) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (elapsed >= duration)
      break;
    const double target = rate * elapsed;
    // Publishes block when RabbitMQ applies flow control: look at the clock every 256 messages.
    for (int n = 0; next < pool.size() && static_cast<double>(events) < target; ++n) {
      if ((n & 255) == 255 && std::chrono::duration<double>(Clock::now() - start).count() >= duration)
        break;
      const Message& m = pool[next++];
      if (auto r = conn.Publish("celeryev", m.routing_key, m.body, props); !r) {
        std::fprintf(stderr, "amqp_publisher: %s\n", r.error().c_str());
        return 1;
      }
      events += m.events;
      ++messages;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  if (next >= pool.size())
    std::fprintf(stderr, "amqp_publisher: pool exhausted; use a larger --pool_tasks\n");
  conn.Close(120000);  // connection.close-ok: the broker has routed everything published
  std::printf("published events=%llu messages=%llu seconds=%.2f rate=%.0f publisher_cpu_seconds=%.2f\n",
              static_cast<unsigned long long>(events), static_cast<unsigned long long>(messages), wall,
              static_cast<double>(events) / wall, CpuSeconds() - cpu0);
  return 0;
}
