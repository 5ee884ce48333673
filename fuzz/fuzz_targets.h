// Stalk — Celery monitoring server.
// The fuzz targets: one entry point per parser that takes outside bytes (fuzz/README.md). Each is an
// ordinary function, so the same code runs under libFuzzer (fuzz/libfuzzer_entry.cc: clang,
// ASan+UBSan, coverage-guided) and under g++ in the corpus replay test (tests/unit/
// fuzz_corpus_test.cc), which makes every corpus file a regression test in every CI run. An entry
// returns 0; a broken invariant aborts with a message (FuzzCheck in fuzz_support.h), which both
// runners report as a failure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace stalk::fuzz {

// A Redis PUB/SUB payload: EventDecoder::DecodeKombuEnvelope, then the events applied to a small
// ClusterState (eviction and truncation limits low so they trigger), liveness ticked, and every task
// and worker rendered as JSON (which must be valid JSON).
int FuzzEnvelope(const uint8_t* data, size_t size);
// An event body as AMQP delivers it (an event object or a list of them): EventDecoder::DecodeBody,
// then applied and rendered as FuzzEnvelope does.
int FuzzBody(const uint8_t* data, size_t size);
// An HTTP request, as text: "METHOD TARGET\n" then "name: value" header lines, an empty line and the
// body. Built into an HttpRequest as the server does (UrlDecode, ParseQuery, lower-case header names)
// and dispatched by a Router holding RegisterReadApi over a small live state. JSON replies must be
// valid JSON; status codes must be real ones.
int FuzzHttp(const uint8_t* data, size_t size);
// A broker URL: ParseBrokerUrl; a parsed URL must have a usable port and db, and Redacted() must not
// depend on the password.
int FuzzBrokerUrl(const uint8_t* data, size_t size);
// A TaskQuery, one field per line: limit, offset, sort_by, workername, taskname, state,
// received_start, received_end, started_start, started_end, search (times through ParseQueryTime).
// RunTaskQuery over a small live state; paging, order and task identity are checked, results rendered.
int FuzzTaskQuery(const uint8_t* data, size_t size);
// Raw RESP bytes as Redis sends them to a subscriber: ParsePMessage (ReadPubSub's fast path) must
// agree with hiredis on every pmessage it recognizes.
int FuzzResp(const uint8_t* data, size_t size);
// Operator-written text, the first byte picking the parser: a --metric_rules file, its `sla:` section,
// an --alerts_config file, a silence POST body (and matchers JSON), a task submission body and date,
// a --conf file.
// Errors must say why; a metric-rules error starts with "file:line:column".
int FuzzConfig(const uint8_t* data, size_t size);
// What comes back from workers and the result backend: a pidbox reply envelope (DecodeRedisEnvelope,
// DecodePidboxReply: every reply names its worker), the same as an AMQP reply (headers table + body)
// and a stored result document (ParseResultMeta).
int FuzzControlReply(const uint8_t* data, size_t size);
// A request's credentials (first byte: the guard — Basic users and API tokens, or OIDC — and the role
// the route needs; then a request as FuzzHttp reads it) through AuthGuard::Check. Nobody gets in
// without a credential Stalk issued or above its role; refusals are 302/401/403/429.
int FuzzAuth(const uint8_t* data, size_t size);

struct FuzzTarget {
  std::string_view name;  // the fuzzer binary's name and its corpus folder, fuzz/corpus/<name>/
  int (*run)(const uint8_t* data, size_t size);
};

// Every target, in a fixed order.
std::span<const FuzzTarget> AllTargets();

}  // namespace stalk::fuzz
