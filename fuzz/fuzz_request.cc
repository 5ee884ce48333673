// Stalk — Celery monitoring server.
#include "fuzz_request.h"

#include <cctype>
#include <string>

#include "fuzz_support.h"

namespace stalk::fuzz {
namespace {

std::string_view NextLine(std::string_view& in) {
  std::string_view line = TakeLine(in);
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  return line;
}

}  // namespace

HttpRequest RequestFromText(std::string_view in) {
  std::string_view request_line = NextLine(in);
  const size_t sp = request_line.find(' ');
  HttpRequest r;
  r.method = std::string(request_line.substr(0, sp));
  std::string_view target = sp == std::string_view::npos ? "/" : request_line.substr(sp + 1);
  target = target.substr(0, target.find(' '));  // drop " HTTP/1.1"
  const size_t q = target.find('?');
  r.path = UrlDecode(target.substr(0, q), false);
  FuzzCheck(r.path.size() <= target.size(), "UrlDecode never grows its input");
  if (q != std::string_view::npos) {
    r.query = ParseQuery(target.substr(q + 1));
  }
  while (!in.empty()) {
    std::string_view line = NextLine(in);
    if (line.empty())
      break;
    const size_t colon = line.find(':');
    std::string name(line.substr(0, colon));
    for (char& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
    r.headers.emplace(std::move(name), std::string(value));
  }
  r.body = std::string(in);
  r.remote_addr = "127.0.0.1";
  return r;
}

}  // namespace stalk::fuzz
