// Stalk — Celery monitoring server.
#include "common/json_writer.h"

#include <charconv>
#include <cmath>

namespace stalk {

namespace {
// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  uint32_t min_cp = 0;
  uint32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, min_cp = 0x80, cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, min_cp = 0x800, cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, min_cp = 0x10000, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) {
    return 0;
  }
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return len;
}
}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t run_start = 0;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(s, i);
      if (len != 0) {
        i += len;
        continue;
      }
    }
    out.append(s.data() + run_start, i - run_start);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += "\xEF\xBF\xBD";  // invalid UTF-8 byte → U+FFFD
        }
    }
    ++i;
    run_start = i;
  }
  out.append(s.data() + run_start, s.size() - run_start);
  out += '"';
}

void JsonWriter::Separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) {
      out_ += ',';
    }
    first_.back() = false;
  }
}

void JsonWriter::BeginObject() {
  Separate();
  out_ += '{';
  first_.push_back(true);
}
void JsonWriter::EndObject() {
  out_ += '}';
  first_.pop_back();
}
void JsonWriter::BeginArray() {
  Separate();
  out_ += '[';
  first_.push_back(true);
}
void JsonWriter::EndArray() {
  out_ += ']';
  first_.pop_back();
}
void JsonWriter::Key(std::string_view key) {
  Separate();
  AppendJsonString(out_, key);
  out_ += ':';
  after_key_ = true;
}
void JsonWriter::String(std::string_view value) {
  Separate();
  AppendJsonString(out_, value);
}
void JsonWriter::Double(double value) {
  Separate();
  if (!std::isfinite(value)) {
    out_ += "null";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  std::string_view text(buf, static_cast<size_t>(r.ptr - buf));
  out_ += text;
  // Python writes floats with a fraction or exponent (1.0, not 1): keep the type visible to clients.
  if (text.find_first_of(".e") == std::string_view::npos) {
    out_ += ".0";
  }
}
void JsonWriter::Int(int64_t value) {
  Separate();
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out_.append(buf, static_cast<size_t>(r.ptr - buf));
}
void JsonWriter::Bool(bool value) {
  Separate();
  out_ += value ? "true" : "false";
}
void JsonWriter::Null() {
  Separate();
  out_ += "null";
}
void JsonWriter::Raw(std::string_view json) {
  Separate();
  out_ += json;
}
void JsonWriter::FieldOrNull(std::string_view key, std::optional<double> value) {
  Key(key);
  if (value) {
    Double(*value);
  } else {
    Null();
  }
}
void JsonWriter::FieldOrNull(std::string_view key, const std::string* value) {
  Key(key);
  if (value) {
    String(*value);
  } else {
    Null();
  }
}

}  // namespace stalk
