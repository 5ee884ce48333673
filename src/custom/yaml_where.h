// Stalk — Celery monitoring server.
// YamlWhere: the "file:line:column: " prefix of an error about a node of a YAML rules file.
#pragma once

#include <string>

#include <yaml-cpp/yaml.h>

namespace stalk {

inline std::string YamlWhere(const std::string& source, const YAML::Mark& m) {
  return source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) + ": ";
}

}  // namespace stalk
