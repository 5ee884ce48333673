// Stalk — Celery monitoring server.
// Lookup over the generated asset table (web_assets.cc in the build dir).
#include "web/assets.h"

#include <algorithm>

namespace stalk {

const WebAsset* FindWebAsset(std::string_view name) {
  const auto assets = WebAssets();
  const auto it = std::lower_bound(assets.begin(), assets.end(), name,
                                   [](const WebAsset& a, std::string_view n) { return a.name < n; });
  return it != assets.end() && it->name == name ? &*it : nullptr;
}

}  // namespace stalk
