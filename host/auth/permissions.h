// Roles and what each may do. Deny by default: a permission not in the
// table (a typo in a route, a permission added later) is refused to every
// role.
//
// Thread-safety: everything here is immutable after static initialization
// and safe to call from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quern::auth {

// operator_: `operator` is a C++ keyword.
enum class Role { admin, developer, operator_, agent };

// "admin", "developer", "operator", "agent" (the spelling stored in the
// database and used by the API and the CLI).
const char* to_string(Role role);
// nullopt for anything else (case-sensitive).
std::optional<Role> role_from_string(std::string_view name);

// Permission names used by the API routes:
//   scripts.read scripts.write jobs.run jobs.run_inline jobs.read jobs.cancel
//   queue.read workers.read tokens.manage docs.read agent schedules.read
//   schedules.write
//
// admin:     everything except "agent"
// developer: scripts.read scripts.write jobs.run jobs.run_inline jobs.read
//            jobs.cancel queue.read workers.read docs.read schedules.read
//            schedules.write
// operator:  scripts.read jobs.run jobs.read jobs.cancel queue.read
//            workers.read docs.read schedules.read (cannot deploy, cannot
//            run inline code, cannot change schedules)
// agent:     agent only (pull jobs, report results as a remote worker)
bool allowed(Role role, std::string_view permission);

// Every permission name above, in that order.
const std::vector<std::string>& all_permissions();

// Every role, in declaration order.
const std::vector<Role>& all_roles();

}  // namespace quern::auth
