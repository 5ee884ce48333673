// Stalk — Celery monitoring server.
#include "control/task_submission.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace stalk {
namespace {

// Reads exactly `n` digits at `pos`; -1 when they are not there.
int Digits(std::string_view s, size_t& pos, size_t n) {
  if (pos + n > s.size())
    return -1;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9')
      return -1;
    v = v * 10 + (c - '0');
  }
  pos += n;
  return v;
}

std::optional<double> NumberFrom(const nlohmann::json& v) {
  if (v.is_number()) {
    return v.get<double>();
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    double d = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), d);
    if (r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(d)) {
      return d;
    }
  }
  return std::nullopt;
}

Result<double> DateFrom(const nlohmann::json& v, const char* what) {
  if (v.is_number()) {
    return v.get<double>();
  }
  if (!v.is_string()) {
    return Error{std::string("Invalid option: ") + what + " must be a date string"};
  }
  auto d = ParseTaskDate(v.get_ref<const std::string&>());
  if (!d) {
    return Error{std::string("Invalid option: ") + what + ": " + d.error()};
  }
  return *d;
}

}  // namespace

Result<double> ParseTaskDate(std::string_view s) {
  if (auto n = NumberFrom(nlohmann::json(std::string(s)))) {
    return *n;  // epoch seconds
  }
  std::tm tm{};
  size_t p = 0;
  const int year = Digits(s, p, 4);
  const bool dash1 = p < s.size() && s[p++] == '-';
  const int month = Digits(s, p, 2);
  const bool dash2 = p < s.size() && s[p++] == '-';
  const int day = Digits(s, p, 2);
  const bool sep = p < s.size() && (s[p] == ' ' || s[p] == 'T') && (++p, true);
  const int hour = Digits(s, p, 2);
  const bool colon1 = p < s.size() && s[p++] == ':';
  const int minute = Digits(s, p, 2);
  if (year < 0 || !dash1 || month < 1 || month > 12 || !dash2 || day < 1 || day > 31 || !sep || hour < 0 || hour > 23 ||
      !colon1 || minute < 0 || minute > 59) {
    return Error{"expected YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]"};
  }
  int second = 0;
  double fraction = 0;
  if (p < s.size() && s[p] == ':') {
    ++p;
    second = Digits(s, p, 2);
    if (second < 0 || second > 60) {
      return Error{"invalid seconds"};
    }
    if (p < s.size() && s[p] == '.') {
      ++p;
      double scale = 0.1;
      const size_t start = p;
      while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
        fraction += (s[p] - '0') * scale;
        scale /= 10;
        ++p;
      }
      if (p == start) {
        return Error{"invalid fraction of a second"};
      }
    }
  }
  int offset_seconds = 0;
  if (p < s.size() && (s[p] == 'Z' || s[p] == 'z')) {
    ++p;
  } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
    const int sign = s[p++] == '-' ? -1 : 1;
    const int oh = Digits(s, p, 2);
    if (p < s.size() && s[p] == ':')
      ++p;
    const int om = Digits(s, p, 2);
    if (oh < 0 || om < 0) {
      return Error{"invalid UTC offset"};
    }
    offset_seconds = sign * (oh * 3600 + om * 60);
  }
  if (p != s.size()) {
    return Error{"unexpected text after the date"};
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<double>(timegm(&tm)) + fraction - offset_seconds;
}

std::string FormatIsoUtc(double epoch_seconds) {
  double whole = std::floor(epoch_seconds);
  long micros = std::lround((epoch_seconds - whole) * 1e6);
  if (micros >= 1000000) {
    whole += 1;
    micros -= 1000000;
  }
  const std::time_t t = static_cast<std::time_t>(whole);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
  return buf;
}

Result<TaskSpec> ParseTaskSubmission(std::string_view body, std::string_view task_name, double now) {
  nlohmann::json options = nlohmann::json::object();
  if (!body.empty()) {
    try {
      options = nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e999
      return Error{std::string("malformed JSON body: ") + e.what()};
    }
  }
  if (!options.is_object()) {
    return Error{"invalid options: the body must be a JSON object"};
  }
  if (auto nested = options.find("options"); nested != options.end() && nested->is_object()) {
    for (auto& [k, v] : nested->items()) {
      if (!options.contains(k))
        options[k] = v;
    }
  }
  TaskSpec spec;
  spec.name = std::string(task_name);
  if (auto a = options.find("args"); a != options.end() && !a->is_null()) {
    if (!a->is_array()) {
      return Error{"args must be an array"};
    }
    spec.args = *a;
  }
  if (auto k = options.find("kwargs"); k != options.end() && !k->is_null()) {
    if (!k->is_object()) {
      return Error{"kwargs must be an object"};
    }
    spec.kwargs = *k;
  }
  if (auto c = options.find("countdown"); c != options.end() && !c->is_null()) {
    auto n = NumberFrom(*c);
    if (!n)
      return Error{"Invalid option: countdown must be a number of seconds"};
    spec.eta = FormatIsoUtc(now + *n);
  }
  if (auto e = options.find("eta"); e != options.end() && !e->is_null()) {
    auto d = DateFrom(*e, "eta");
    if (!d)
      return Error{d.error()};
    spec.eta = FormatIsoUtc(*d);
  }
  if (auto e = options.find("expires"); e != options.end() && !e->is_null()) {
    if (auto n = NumberFrom(*e)) {
      spec.expires_in_seconds = *n;
      spec.expires = FormatIsoUtc(now + *n);
    } else {
      auto d = DateFrom(*e, "expires");
      if (!d)
        return Error{d.error()};
      spec.expires_in_seconds = *d - now;
      spec.expires = FormatIsoUtc(*d);
    }
  }
  for (const char* key : {"routing_key", "queue"}) {  // queue wins over routing_key
    if (auto q = options.find(key); q != options.end() && !q->is_null()) {
      if (!q->is_string() || q->get_ref<const std::string&>().empty()) {
        return Error{std::string("Invalid option: ") + key + " must be a non-empty string"};
      }
      spec.queue = q->get<std::string>();
    }
  }
  if (auto p = options.find("priority"); p != options.end() && !p->is_null()) {
    if (!p->is_number_integer() || p->get<int64_t>() < 0 || p->get<int64_t>() > 255) {
      return Error{"Invalid option: priority must be an integer from 0 to 255"};
    }
    spec.priority = p->get<int>();
  }
  if (auto id = options.find("task_id"); id != options.end() && !id->is_null()) {
    if (!id->is_string() || id->get_ref<const std::string&>().empty()) {
      return Error{"Invalid option: task_id must be a non-empty string"};
    }
    spec.id = id->get<std::string>();
  }
  for (auto [key, dst] :
       {std::pair{"time_limit", &spec.time_limit}, std::pair{"soft_time_limit", &spec.soft_time_limit}}) {
    if (auto t = options.find(key); t != options.end() && !t->is_null()) {
      auto n = NumberFrom(*t);
      if (!n || *n < 0)
        return Error{std::string("Invalid option: ") + key + " must be a number of seconds"};
      *dst = *n;
    }
  }
  if (auto i = options.find("ignore_result"); i != options.end() && !i->is_null()) {
    if (!i->is_boolean())
      return Error{"Invalid option: ignore_result must be true or false"};
    spec.ignore_result = i->get<bool>();
  }
  return spec;
}

}  // namespace stalk
