// Stalk — Celery monitoring server.
// fuzz_broker_url: ParseBrokerUrl on arbitrary text (--broker, CELERY_BROKER_URL, config files).
#include <string>

#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "transport/broker_url.h"

namespace stalk::fuzz {

int FuzzBrokerUrl(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto url = ParseBrokerUrl(text);
  if (!url) {
    FuzzCheck(!url.error().empty(), "a parse error says why");
    return 0;
  }
  if (url->unix_path.empty()) {
    FuzzCheck(url->port > 0 && url->port <= 65535, "a parsed TCP broker URL has a port in 1..65535");
    FuzzCheck(!url->host.empty(), "a parsed TCP broker URL has a host");
  }
  FuzzCheck(url->db >= 0, "a parsed broker URL has a db number >= 0");
  // What logs and errors show must not depend on the password.
  BrokerUrl other = *url;
  if (!other.password.empty()) {
    other.password.assign(1, 'x');
  }
  FuzzCheck(url->Redacted() == other.Redacted(), "Redacted() does not show the password");
  return 0;
}

}  // namespace stalk::fuzz
