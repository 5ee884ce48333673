// Stalk — Celery monitoring server.
// Roles: viewer (read: GET API, pages, /metrics), operator (+ remote control and task routes),
// admin (everything, including /api/admin). Each role includes the ones below it.
#pragma once

#include <optional>
#include <string_view>

namespace stalk {

enum class Role { kViewer = 0, kOperator = 1, kAdmin = 2 };

std::optional<Role> ParseRole(std::string_view name);
std::string_view RoleName(Role r);
// True when a principal with role `have` may use a route that requires `need`.
bool RoleAllows(Role have, Role need);

}  // namespace stalk
