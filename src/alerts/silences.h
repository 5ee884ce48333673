// Stalk — Celery monitoring server.
// Silences: label matchers that mute notifications of matching alerts until they expire (as in
// Alertmanager). A silenced alert still goes pending/firing/resolved and is listed, marked silenced;
// only its notifications are held back. Not thread-safe: AlertEngine holds its lock around calls.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace stalk {

struct Silence {
  std::string id;
  std::map<std::string, std::string> matchers;  // label -> value; a trailing '*' matches a prefix
  double starts_at = 0, ends_at = 0;
  std::string created_by, comment;

  bool Matches(const std::map<std::string, std::string>& labels) const;
  bool ActiveAt(double now) const { return now >= starts_at && now < ends_at; }
};

class Silences {
 public:
  // Parses a POST body: {"matchers": {"alertname": "X", ...} or [{"name","value"}...],
  // "duration": "1h" or "ends_at": epoch, "starts_at"?, "comment"?, "created_by"?}.
  static Result<Silence> Parse(const std::string& json_body, double now);

  // Adds `s` with a fresh id; returns the id.
  std::string Add(Silence s);
  bool Remove(const std::string& id);
  // The first active silence matching `labels`, or null.
  const Silence* Find(const std::map<std::string, std::string>& labels, double now) const;
  // Drops silences that ended more than `keep` seconds before now.
  void Expire(double now, double keep);
  const std::vector<Silence>& all() const { return silences_; }

 private:
  std::vector<Silence> silences_;
  uint64_t next_ = 1;
};

}  // namespace stalk
