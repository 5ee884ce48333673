// Stalk — Celery monitoring server.
#include "auth/roles.h"

namespace stalk {

std::optional<Role> ParseRole(std::string_view name) {
  if (name == "viewer") {
    return Role::kViewer;
  }
  if (name == "operator") {
    return Role::kOperator;
  }
  if (name == "admin") {
    return Role::kAdmin;
  }
  return std::nullopt;
}

std::string_view RoleName(Role r) {
  switch (r) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

bool RoleAllows(Role have, Role need) { return static_cast<int>(have) >= static_cast<int>(need); }

}  // namespace stalk
