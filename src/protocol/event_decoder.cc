// Stalk — Celery monitoring server.
#include "protocol/event_decoder.h"

#include <cstring>

#include "common/base64.h"

namespace stalk {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

bool AsDouble(element e, double& out) {
  switch (e.type()) {
    case element_type::DOUBLE:
      out = e.get_double().value_unsafe();
      return true;
    case element_type::INT64:
      out = static_cast<double>(e.get_int64().value_unsafe());
      return true;
    case element_type::UINT64:
      out = static_cast<double>(e.get_uint64().value_unsafe());
      return true;
    default:
      return false;
  }
}

bool AsInt(element e, int64_t& out) {
  switch (e.type()) {
    case element_type::INT64:
      out = e.get_int64().value_unsafe();
      return true;
    case element_type::UINT64: {
      const uint64_t v = e.get_uint64().value_unsafe();
      out = v > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(v);
      return true;
    }
    case element_type::DOUBLE: {
      const double d = e.get_double().value_unsafe();
      if (!(d > -9.2e18 && d < 9.2e18)) {
        return false;
      }
      out = static_cast<int64_t>(d);
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

EventDecoder::EventDecoder(size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

size_t EventDecoder::DecodeKombuEnvelope(std::string_view envelope, const Sink& sink, const RejectSink& on_reject) {
  if (envelope.size() > max_message_bytes_) {
    on_reject(RejectReason::kOversized, "message larger than the limit");
    return 0;
  }
  padded_.reserve(envelope.size() + simdjson::SIMDJSON_PADDING);
  padded_.assign(envelope);
  return DecodeEnvelopeAt(padded_.data(), padded_.size(), sink, on_reject);
}

void PadForDecoding(std::string& s) { s.reserve(s.size() + simdjson::SIMDJSON_PADDING); }

size_t EventDecoder::DecodeKombuEnvelope(const std::string& envelope, const Sink& sink, const RejectSink& on_reject) {
  if (envelope.capacity() < envelope.size() + simdjson::SIMDJSON_PADDING) {
    return DecodeKombuEnvelope(std::string_view(envelope), sink, on_reject);
  }
  if (envelope.size() > max_message_bytes_) {
    on_reject(RejectReason::kOversized, "message larger than the limit");
    return 0;
  }
  return DecodeEnvelopeAt(envelope.data(), envelope.size(), sink, on_reject);
}

namespace {
struct EnvelopeFields {
  std::string_view body, content_type = "application/json", body_encoding;
  bool has_body = false;
  bool body_not_string = false;
};

void ReadEnvelopeFields(object env, EnvelopeFields& f) {
  for (auto field : env) {
    const std::string_view key = field.key;
    if (key == "body") {
      f.has_body = true;
      f.body_not_string = field.value.get_string().get(f.body) != simdjson::SUCCESS;
    } else if (key == "content-type") {
      if (field.value.get_string().get(f.content_type)) {
        f.content_type = "";
      }
    } else if (key == "properties") {
      object props;
      if (!field.value.get_object().get(props)) {
        std::string_view enc;
        if (!props["body_encoding"].get_string().get(enc)) {
          f.body_encoding = enc;
        }
      }
    }
  }
}

// kombu writes the body first: `{"body": "<base64>", ...}`. The body is most of the bytes and, being
// base64, holds no escapes, so the fast path slices it out and parses only the rest of the envelope.
// Returns false when the layout is anything else (the caller then parses the whole envelope).
bool SplitKombuBody(const char* data, size_t size, std::string_view& body, std::string& rest) {
  static constexpr std::string_view kPrefix = "{\"body\": \"";
  if (size <= kPrefix.size() || std::memcmp(data, kPrefix.data(), kPrefix.size()) != 0) {
    return false;
  }
  const char* start = data + kPrefix.size();
  const char* end = static_cast<const char*>(std::memchr(start, '"', size - kPrefix.size()));
  if (!end || std::memchr(start, '\\', static_cast<size_t>(end - start))) {
    return false;
  }
  const char* p = end + 1;
  const char* stop = data + size;
  while (p < stop && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) {
    ++p;
  }
  if (p == stop || (*p != ',' && *p != '}')) {
    return false;
  }
  rest.assign("{");
  if (*p == ',') {
    rest.append(p + 1, static_cast<size_t>(stop - p - 1));
  } else {
    rest.append(p, static_cast<size_t>(stop - p));
  }
  rest.reserve(rest.size() + simdjson::SIMDJSON_PADDING);
  body = std::string_view(start, static_cast<size_t>(end - start));
  return true;
}
}  // namespace

size_t EventDecoder::DecodeEnvelopeAt(const char* data, size_t size, const Sink& sink, const RejectSink& on_reject) {
  EnvelopeFields f;
  object env;
  std::string_view fast_body;
  if (SplitKombuBody(data, size, fast_body, rest_)) {
    if (envelope_parser_.parse(rest_.data(), rest_.size(), false).get_object().get(env)) {
      on_reject(RejectReason::kMalformedEnvelope, "not a JSON object");
      return 0;
    }
    ReadEnvelopeFields(env, f);
    if (!f.has_body) {  // a repeated "body" key in the rest wins, as in the full parse
      f.body = fast_body;
      f.has_body = true;
    }
  } else {
    if (envelope_parser_.parse(data, size, false).get_object().get(env)) {
      on_reject(RejectReason::kMalformedEnvelope, "not a JSON object");
      return 0;
    }
    ReadEnvelopeFields(env, f);
  }
  if (f.body_not_string) {
    on_reject(RejectReason::kMalformedEnvelope, "body is not a string");
    return 0;
  }
  const std::string_view body = f.body, content_type = f.content_type, body_encoding = f.body_encoding;
  const bool has_body = f.has_body;
  if (!has_body) {
    on_reject(RejectReason::kMalformedEnvelope, "no body");
    return 0;
  }
  body_padded_.reserve(body.size() + simdjson::SIMDJSON_PADDING);  // decoded <= encoded: no realloc below
  if (body_encoding == "base64") {
    if (!Base64Decode(body, body_padded_)) {
      on_reject(RejectReason::kBadBodyEncoding, "body is not valid base64");
      return 0;
    }
  } else if (body_encoding.empty() || body_encoding == "utf-8") {
    body_padded_.assign(body);
  } else {
    on_reject(RejectReason::kBadBodyEncoding, body_encoding);
    return 0;
  }
  // Content type is checked after the body is extracted so the reject detail can name it.
  if (content_type != "application/json" && !content_type.starts_with("application/json;")) {
    on_reject(RejectReason::kUnsupportedSerializer, content_type);
    return 0;
  }
  body_padded_.reserve(body_padded_.size() + simdjson::SIMDJSON_PADDING);
  return DecodeJsonBody(body_padded_, sink, on_reject);
}

size_t EventDecoder::DecodeBody(std::string_view content_type, std::string_view body, const Sink& sink,
                                const RejectSink& on_reject) {
  if (body.size() > max_message_bytes_) {
    on_reject(RejectReason::kOversized, "message larger than the limit");
    return 0;
  }
  if (!content_type.empty() && content_type != "application/json" && !content_type.starts_with("application/json;")) {
    on_reject(RejectReason::kUnsupportedSerializer, content_type);
    return 0;
  }
  body_padded_.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  body_padded_.assign(body);
  return DecodeJsonBody(body_padded_, sink, on_reject);
}

size_t EventDecoder::DecodeJsonBody(std::string_view json, const Sink& sink, const RejectSink& on_reject) {
  element root;
  if (body_parser_.parse(json.data(), json.size(), false).get(root)) {
    on_reject(RejectReason::kMalformedBody, "body is not valid JSON");
    return 0;
  }
  scratch_.clear();
  size_t delivered = 0;
  Event ev;
  RejectReason why{};
  auto one = [&](element e) {
    object obj;
    if (e.get_object().get(obj)) {
      on_reject(RejectReason::kNotAnEvent, "event is not an object");
      return;
    }
    ev = Event{};
    if (!FillEvent(obj, ev, why)) {
      on_reject(why, ev.type);
      return;
    }
    sink(ev);
    ++delivered;
  };
  simdjson::dom::array list;
  if (!root.get_array().get(list)) {
    for (element e : list) {
      one(e);
    }
  } else {
    one(root);
  }
  return delivered;
}

bool EventDecoder::FillEvent(object obj, Event& ev, RejectReason& why) {
  // Text fields normally carry Python repr strings; other JSON types (a custom event may put a number
  // or a list in "result") are kept as their JSON text rather than dropped.
  auto text = [&](element v, OptStr& out) {
    out.present = true;
    if (v.is_null()) {
      out.null = true;
    } else if (v.is_string()) {
      out.value = v.get_string().value_unsafe();
    } else {
      scratch_.push_back(simdjson::minify(v));
      out.value = scratch_.back();
    }
  };
  bool type_ok = false;
  for (auto field : obj) {
    const std::string_view k = field.key;
    const element v = field.value;
    if (k.empty()) {
      continue;
    }
    switch (k[0]) {
      case 'a':
        if (k == "args")
          text(v, ev.args);
        else if (k == "active") {
          int64_t n;
          if (AsInt(v, n))
            ev.active = n;
        }
        break;
      case 'c':
        if (k == "clock")
          ev.has_clock = AsInt(v, ev.clock);
        break;
      case 'e':
        if (k == "exception")
          text(v, ev.exception);
        else if (k == "eta")
          text(v, ev.eta);
        else if (k == "expires")
          text(v, ev.expires);
        else if (k == "exchange")
          text(v, ev.exchange);
        else if (k == "expired") {
          bool b;
          if (!v.get_bool().get(b))
            ev.expired = b;
        }
        break;
      case 'f':
        if (k == "freq") {
          double d;
          if (AsDouble(v, d))
            ev.freq = d;
        }
        break;
      case 'h':
        if (k == "hostname") {
          std::string_view s;
          if (!v.get_string().get(s))
            ev.hostname = s;
        }
        break;
      case 'k':
        if (k == "kwargs")
          text(v, ev.kwargs);
        break;
      case 'l': {
        simdjson::dom::array arr;
        if (k == "loadavg" && !v.get_array().get(arr)) {
          std::array<double, 3> la{};
          size_t i = 0;
          for (element x : arr) {
            if (i < 3) {
              AsDouble(x, la[i]);
            }
            ++i;
          }
          ev.loadavg = la;
        }
        break;
      }
      case 'n':
        if (k == "name")
          text(v, ev.name);
        break;
      case 'p':
        if (k == "pid")
          AsInt(v, ev.pid);
        else if (k == "parent_id")
          text(v, ev.parent_id);
        else if (k == "processed") {
          int64_t n;
          if (AsInt(v, n))
            ev.processed = n;
        }
        break;
      case 'q':
        if (k == "queue")
          text(v, ev.queue);
        break;
      case 'r':
        if (k == "result")
          text(v, ev.result);
        else if (k == "runtime") {
          double d;
          if (AsDouble(v, d))
            ev.runtime = d;
        } else if (k == "retries") {
          int64_t n;
          if (AsInt(v, n))
            ev.retries = n;
        } else if (k == "root_id")
          text(v, ev.root_id);
        else if (k == "routing_key")
          text(v, ev.routing_key);
        else if (k == "requeue" || k == "requeued") {
          bool b;
          if (!v.get_bool().get(b))
            ev.requeue = b;
        }
        break;
      case 's':
        if (k == "signum")
          text(v, ev.signum);
        else if (k == "sw_ident")
          text(v, ev.sw_ident);
        else if (k == "sw_ver")
          text(v, ev.sw_ver);
        else if (k == "sw_sys")
          text(v, ev.sw_sys);
        break;
      case 't':
        if (k == "type")
          type_ok = !v.get_string().get(ev.type);
        else if (k == "timestamp")
          ev.has_timestamp = AsDouble(v, ev.timestamp);
        else if (k == "traceback")
          text(v, ev.traceback);
        else if (k == "terminated") {
          bool b;
          if (!v.get_bool().get(b))
            ev.terminated = b;
        }
        break;
      case 'u':
        if (k == "uuid") {
          std::string_view s;
          if (!v.get_string().get(s))
            ev.uuid = s;
        } else if (k == "utcoffset")
          AsDouble(v, ev.utcoffset);
        break;
      default:
        break;
    }
  }
  if (!type_ok || ev.type.empty()) {
    why = RejectReason::kNotAnEvent;
    return false;
  }
  ev.kind = ClassifyEventType(ev.type);
  if (ev.kind == EventKind::kTaskCustom || ev.kind == EventKind::kWorkerCustom || ev.kind == EventKind::kOther) {
    scratch_.push_back(simdjson::minify(obj));
    ev.custom_json = scratch_.back();
  }
  if (IsTaskEvent(ev.kind) && ev.uuid.empty()) {
    why = RejectReason::kMissingField;
    return false;
  }
  if (IsWorkerEvent(ev.kind) && ev.hostname.empty()) {
    why = RejectReason::kMissingField;
    return false;
  }
  return true;
}

}  // namespace stalk
