// Stalk — Celery monitoring server.
#include "control/python_repr.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace stalk {
namespace {

void AppendRepr(std::string& out, const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      out += "None";
      return;
    case nlohmann::json::value_t::boolean:
      out += v.get<bool>() ? "True" : "False";
      return;
    case nlohmann::json::value_t::number_integer:
      out += std::to_string(v.get<int64_t>());
      return;
    case nlohmann::json::value_t::number_unsigned:
      out += std::to_string(v.get<uint64_t>());
      return;
    case nlohmann::json::value_t::number_float:
      out += PythonFloatRepr(v.get<double>());
      return;
    case nlohmann::json::value_t::string:
      out += PythonStrRepr(v.get_ref<const std::string&>());
      return;
    case nlohmann::json::value_t::binary:
      out += "b''";
      return;
    case nlohmann::json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v) {
        if (!first)
          out += ", ";
        first = false;
        AppendRepr(out, item);
      }
      out += ']';
      return;
    }
    case nlohmann::json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.items()) {
        if (!first)
          out += ", ";
        first = false;
        out += PythonStrRepr(key);
        out += ": ";
        AppendRepr(out, item);
      }
      out += '}';
      return;
    }
  }
}

}  // namespace

std::string PythonRepr(const nlohmann::json& value) {
  std::string out;
  AppendRepr(out, value);
  return out;
}

std::string PythonStrRepr(std::string_view text) {
  const bool has_single = text.find('\'') != std::string_view::npos;
  const bool has_double = text.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out;
  out.reserve(text.size() + 2);
  out += quote;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == quote || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += quote;
  return out;
}

std::string PythonFloatRepr(double value) {
  if (std::isnan(value)) {
    return "nan";
  }
  if (std::isinf(value)) {
    return value < 0 ? "-inf" : "inf";
  }
  // Shortest round-trip digits in scientific form ("-1.2345e+06"), then Python's layout: fixed
  // notation when the decimal exponent is in [-4, 16), scientific otherwise.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (!sci.empty() && sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  const int exponent = std::stoi(sci.substr(e + 1));
  std::string digits;
  for (char c : mantissa) {
    if (c != '.')
      digits += c;
  }
  while (digits.size() > 1 && digits.back() == '0') {
    digits.pop_back();
  }
  if (exponent >= -4 && exponent < 16) {
    std::string out;
    if (exponent < 0) {
      out = "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else {
      const size_t int_len = static_cast<size_t>(exponent) + 1;
      if (digits.size() <= int_len) {
        out = digits + std::string(int_len - digits.size(), '0') + ".0";
      } else {
        out = digits.substr(0, int_len) + "." + digits.substr(int_len);
      }
    }
    return sign + out;
  }
  std::string out = digits.substr(0, 1);
  if (digits.size() > 1) {
    out += "." + digits.substr(1);
  }
  char exp_buf[16];
  std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return sign + out + exp_buf;
}

std::string ExceptionRepr(const nlohmann::json& result) {
  if (!result.is_object() || !result.contains("exc_type") || !result["exc_type"].is_string()) {
    return {};
  }
  std::string out = result["exc_type"].get<std::string>() + "(";
  const auto it = result.find("exc_message");
  if (it != result.end()) {
    if (it->is_array()) {
      bool first = true;
      for (const auto& arg : *it) {
        if (!first)
          out += ", ";
        first = false;
        out += PythonRepr(arg);
      }
    } else if (!it->is_null()) {
      out += PythonRepr(*it);
    }
  }
  return out + ")";
}

}  // namespace stalk
