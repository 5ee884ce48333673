// Stalk — Celery monitoring server.
// StalkProbe: `stalk doctor --stalk-url` — asks a running `stalk serve` for /healthcheck over plain
// HTTP/1.1 (one request, Connection: close, bounded by a timeout) and turns the answer into a check:
// 200 "OK" passes, "OK (store degraded…)" warns, 503 (broker unreachable) fails.
#pragma once

#include <string>

#include "setup/doctor_checks.h"

namespace stalk {

// `url` is http://host:port[/prefix]; "" gives a SKIP. https:// is reported as not checked.
Check CheckStalkServer(const std::string& url, int timeout_ms);

}  // namespace stalk
