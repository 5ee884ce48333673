// Stalk — Celery monitoring server.
#include "http/http_request.h"

#include <algorithm>

#include "common/json_writer.h"

namespace stalk {

std::optional<std::string> HttpRequest::Arg(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::string HttpRequest::ArgOr(const std::string& name, std::string fallback) const {
  auto v = Arg(name);
  return v ? *v : std::move(fallback);
}

bool HttpRequest::BoolArg(const std::string& name) const {
  auto v = Arg(name);
  if (!v) {
    return false;
  }
  std::string s = *v;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s == "1" || s == "true" || s == "yes" || s == "on" || s == "y" || s == "t";
}

std::string HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

HttpResponse HttpResponse::Json(std::string body, int status) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::Text(std::string body, int status) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=UTF-8";
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::Error(int status, std::string_view message) {
  JsonWriter w;
  w.BeginObject();
  w.Field("error", message);
  w.EndObject();
  return Json(w.Take(), status);
}

std::string UrlDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    const size_t amp = q.find('&');
    std::string_view kv = q.substr(0, amp);
    if (!kv.empty()) {
      const size_t eq = kv.find('=');
      std::string key = UrlDecode(kv.substr(0, eq), true);
      std::string value = eq == std::string_view::npos ? std::string() : UrlDecode(kv.substr(eq + 1), true);
      out.emplace(std::move(key), std::move(value));
    }
    if (amp == std::string_view::npos) {
      break;
    }
    q.remove_prefix(amp + 1);
  }
  return out;
}

}  // namespace stalk
