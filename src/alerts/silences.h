// Stalk — Celery monitoring server.
// Silences: label matchers that mute notifications of matching alerts until they expire (as in
// Alertmanager). A silenced alert still goes pending/firing/resolved and is listed, marked silenced;
// only its notifications are held back. Not thread-safe: AlertEngine holds its lock around calls.
// Persistence (a restart keeps them) is the engine's SilencePersistence: the store's silences table.
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

// The matchers as a JSON object ({"alertname": "X"}), and back (the store keeps that text).
std::string MatchersJson(const Silence& s);
Result<std::map<std::string, std::string>> ParseMatchersJson(const std::string& text);

class Silences {
 public:
  // Parses a POST body: {"matchers": {"alertname": "X", ...} or [{"name","value"}...],
  // "duration": "1h" or "ends_at": epoch, "starts_at"?, "comment"?, "created_by"?}.
  static Result<Silence> Parse(const std::string& json_body, double now);

  // Adds `s` with a fresh id; returns the id.
  std::string Add(Silence s);
  // Adds a silence that already has an id (loaded from the store at start-up).
  void Restore(Silence s);
  bool Remove(const std::string& id);
  // The first active silence matching `labels`, or null.
  const Silence* Find(const std::map<std::string, std::string>& labels, double now) const;
  // Drops silences that ended more than `keep` seconds before now; returns their ids.
  std::vector<std::string> Expire(double now, double keep);
  const std::vector<Silence>& all() const { return silences_; }

 private:
  std::vector<Silence> silences_;
  uint64_t next_ = 1;
};

}  // namespace stalk
