#include "host/auth/permissions.h"

namespace quern::auth {
namespace {

// One row per permission: which roles hold it. Kept as a table so that a
// review sees the whole policy at once.
struct Grant {
  const char* permission;
  bool admin, developer, operator_, agent;
};

constexpr Grant kGrants[] = {
    //  permission          admin  developer operator agent
    {"scripts.read", true, true, true, false},     {"scripts.write", true, true, false, false},
    {"jobs.run", true, true, true, false},         {"jobs.run_inline", true, true, false, false},
    {"jobs.read", true, true, true, false},        {"jobs.cancel", true, true, true, false},
    {"queue.read", true, true, true, false},       {"workers.read", true, true, true, false},
    {"tokens.manage", true, false, false, false},  {"docs.read", true, true, true, false},
    {"agent", false, false, false, true},          {"schedules.read", true, true, true, false},
    {"schedules.write", true, true, false, false}, {"autoscale.read", true, true, true, false},
    {"session.read", true, true, true, false},
};

}  // namespace

const char* to_string(Role role) {
  switch (role) {
    case Role::admin:
      return "admin";
    case Role::developer:
      return "developer";
    case Role::operator_:
      return "operator";
    case Role::agent:
      return "agent";
  }
  return "unknown";
}

std::optional<Role> role_from_string(std::string_view name) {
  for (Role r : all_roles())
    if (name == to_string(r)) return r;
  return std::nullopt;
}

bool allowed(Role role, std::string_view permission) {
  for (const Grant& g : kGrants) {
    if (permission != g.permission) continue;
    switch (role) {
      case Role::admin:
        return g.admin;
      case Role::developer:
        return g.developer;
      case Role::operator_:
        return g.operator_;
      case Role::agent:
        return g.agent;
    }
  }
  return false;
}

const std::vector<std::string>& all_permissions() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Grant& g : kGrants) v.emplace_back(g.permission);
    return v;
  }();
  return names;
}

const std::vector<Role>& all_roles() {
  static const std::vector<Role> roles = {Role::admin, Role::developer, Role::operator_, Role::agent};
  return roles;
}

}  // namespace quern::auth
