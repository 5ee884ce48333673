// Stalk — Celery monitoring server.
// RequestFromText: the fuzz targets' HTTP request format — "METHOD TARGET\n", then "name: value"
// header lines, an empty line and the body — built into an HttpRequest as http/http_server.cc does
// (UrlDecode of the path, ParseQuery, lower-case header names). Fuzz-only code.
#pragma once

#include <string_view>

#include "http/http_request.h"

namespace stalk::fuzz {

HttpRequest RequestFromText(std::string_view text);

}  // namespace stalk::fuzz
