// Stalk — Celery monitoring server.
// The dashboard's files (src/web/pages/*.html, src/web/static/*), embedded into the binary at build
// time: embed_assets.cmake turns them into byte arrays in a generated web_assets.cc in the build dir
// (never in git). Names are paths under src/web ("static/app.css", "pages/tasks.html"). Each asset
// carries its Content-Type and a strong ETag (a hash of its bytes), both decided at build time.
#pragma once

#include <span>
#include <string_view>

namespace stalk {

struct WebAsset {
  std::string_view name;          // "static/app.css"
  std::string_view content_type;  // "text/css; charset=utf-8"
  std::string_view etag;          // "\"<16 hex digits>\"", quoted as HTTP wants it
  std::string_view body;
};

// Every embedded asset, sorted by name.
std::span<const WebAsset> WebAssets();
// nullptr when there is no such asset.
const WebAsset* FindWebAsset(std::string_view name);
// A hash over every asset: changes whenever any file changes. Pages put it in their asset URLs
// (`static/app.js?v=...`), so browsers may cache those for a long time.
std::string_view WebAssetsVersion();

}  // namespace stalk
