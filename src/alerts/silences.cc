// Stalk — Celery monitoring server.
#include "alerts/silences.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <random>

#include "alerts/alert_config.h"
#include "alerts/duration.h"

namespace stalk {

bool Silence::Matches(const std::map<std::string, std::string>& labels) const {
  if (matchers.empty()) {
    return false;  // an empty silence would mute everything: refused at Parse, never matches
  }
  for (const auto& [k, v] : matchers) {
    auto it = labels.find(k);
    if (v.empty()) {
      if (it != labels.end() && !it->second.empty())
        return false;  // "" matches an absent label
    } else if (it == labels.end() || !GlobMatch(v, it->second)) {
      return false;
    }
  }
  return true;
}

Result<Silence> Silences::Parse(const std::string& json_body, double now) {
  auto j = nlohmann::json::parse(json_body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error{"malformed JSON body: expected an object"};
  }
  Silence s;
  s.starts_at = now;
  const auto& m = j.value("matchers", nlohmann::json());
  if (m.is_object()) {
    for (auto& [k, v] : m.items()) {
      if (!v.is_string())
        return Error{"matcher values must be strings"};
      s.matchers[k] = v.get<std::string>();
    }
  } else if (m.is_array()) {
    for (const auto& item : m) {
      if (!item.is_object() || !item.contains("name") || !item["name"].is_string() || !item.contains("value") ||
          !item["value"].is_string()) {
        return Error{"each matcher needs string 'name' and 'value'"};
      }
      s.matchers[item["name"].get<std::string>()] = item["value"].get<std::string>();
    }
  }
  if (s.matchers.empty()) {
    return Error{"a silence needs at least one matcher, e.g. {\"matchers\": {\"alertname\": \"WorkerOffline\"}}"};
  }
  if (j.contains("starts_at") && j["starts_at"].is_number()) {
    s.starts_at = j["starts_at"].get<double>();
  }
  if (j.contains("ends_at") && j["ends_at"].is_number()) {
    s.ends_at = j["ends_at"].get<double>();
  } else if (j.contains("duration") && j["duration"].is_string()) {
    auto d = ParseRuleDuration(j["duration"].get<std::string>());
    if (!d)
      return Error{d.error()};
    s.ends_at = s.starts_at + *d;
  } else {
    return Error{"a silence needs 'duration' (e.g. \"2h\") or 'ends_at' (epoch seconds)"};
  }
  if (s.ends_at <= s.starts_at) {
    return Error{"a silence must end after it starts"};
  }
  if (j.contains("comment") && j["comment"].is_string())
    s.comment = j["comment"].get<std::string>();
  if (j.contains("created_by") && j["created_by"].is_string())
    s.created_by = j["created_by"].get<std::string>();
  return s;
}

std::string Silences::Add(Silence s) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[24];
  std::snprintf(buf, sizeof buf, "%04llx%012llx", static_cast<unsigned long long>(next_++ & 0xffff),
                static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  s.id = buf;
  silences_.push_back(std::move(s));
  return silences_.back().id;
}

bool Silences::Remove(const std::string& id) {
  for (auto it = silences_.begin(); it != silences_.end(); ++it) {
    if (it->id == id) {
      silences_.erase(it);
      return true;
    }
  }
  return false;
}

const Silence* Silences::Find(const std::map<std::string, std::string>& labels, double now) const {
  for (const auto& s : silences_) {
    if (s.ActiveAt(now) && s.Matches(labels))
      return &s;
  }
  return nullptr;
}

std::vector<std::string> Silences::Expire(double now, double keep) {
  std::vector<std::string> gone;
  std::erase_if(silences_, [&](const Silence& s) {
    if (s.ends_at + keep >= now)
      return false;
    gone.push_back(s.id);
    return true;
  });
  return gone;
}

void Silences::Restore(Silence s) {
  for (auto& existing : silences_) {
    if (existing.id == s.id) {
      existing = std::move(s);
      return;
    }
  }
  silences_.push_back(std::move(s));
}

std::string MatchersJson(const Silence& s) { return nlohmann::json(s.matchers).dump(); }

Result<std::map<std::string, std::string>> ParseMatchersJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Error{"stored matchers are not a JSON object"};
  std::map<std::string, std::string> out;
  for (auto& [k, v] : j.items()) {
    if (!v.is_string())
      return Error{"stored matcher values must be strings"};
    out[k] = v.get<std::string>();
  }
  if (out.empty())
    return Error{"a stored silence has no matchers"};
  return out;
}

}  // namespace stalk
