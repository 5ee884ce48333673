// Stalk — Celery monitoring server.
// HttpRequest/HttpResponse: what route handlers see, independent of Boost.Beast so handlers are
// testable without sockets. Query strings are decoded (%XX and '+'); repeated keys keep the first.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace stalk {

struct HttpRequest {
  std::string method;
  std::string path;  // decoded, without the query string and the url prefix
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string remote_addr;  // the connection's peer address (filled by the server)

  std::optional<std::string> Arg(const std::string& name) const;
  std::string ArgOr(const std::string& name, std::string fallback) const;
  // Flower's bool arguments: 1/true/yes/on are true.
  bool BoolArg(const std::string& name) const;
  std::string Header(const std::string& lower_name) const;
};

class SseHub;  // http/sse_hub.h

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json; charset=UTF-8";
  std::string body;
  std::map<std::string, std::string> headers;
  // Non-null: answer with an open `text/event-stream` fed by this hub (the server attaches the
  // connection to it) instead of `body`. The hub must outlive the server.
  SseHub* event_stream = nullptr;

  static HttpResponse EventStream(SseHub& hub) {
    HttpResponse r;
    r.content_type = "text/event-stream; charset=utf-8";
    r.event_stream = &hub;
    return r;
  }

  static HttpResponse Json(std::string body, int status = 200);
  static HttpResponse Text(std::string body, int status = 200);
  // {"error": message} with the status; the message must not contain secrets.
  static HttpResponse Error(int status, std::string_view message);
};

std::string UrlDecode(std::string_view s, bool plus_is_space);
std::map<std::string, std::string> ParseQuery(std::string_view q);

}  // namespace stalk
