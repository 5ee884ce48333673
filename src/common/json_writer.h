// Stalk — Celery monitoring server.
// JsonWriter: a small streaming JSON writer for API replies. Chosen over nlohmann::json for the
// /api/tasks hot path: it appends straight into one growing buffer with no DOM, which measured ~4x
// faster when rendering 1,000 tasks. Doubles are written shortest-round-trip (as Python's repr),
// NaN/inf as null; strings are escaped per RFC 8259, invalid UTF-8 bytes replaced by U+FFFD.
//
//   JsonWriter w;
//   w.BeginObject(); w.Key("state"); w.String("SUCCESS"); w.Key("runtime"); w.Double(0.5); w.EndObject();
//   std::string body = w.Take();
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stalk {

class JsonWriter {
 public:
  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  void Key(std::string_view key);
  void String(std::string_view value);
  void Double(double value);
  void Int(int64_t value);
  void Bool(bool value);
  void Null();
  // Writes already-encoded JSON as a value (caller guarantees validity).
  void Raw(std::string_view json);

  // Convenience: key + value; an empty optional writes null.
  void Field(std::string_view key, std::string_view value) { Key(key), String(value); }
  void Field(std::string_view key, double value) { Key(key), Double(value); }
  void FieldOrNull(std::string_view key, std::optional<double> value);
  void FieldOrNull(std::string_view key, const std::string* value);

  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }
  void Reserve(size_t n) { out_.reserve(n); }

 private:
  void Separate();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

// Appends `s` to `out` as a quoted, escaped JSON string.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace stalk
