// The role × permission table, asserted whole, and role names.
#include <gtest/gtest.h>

#include <array>
#include <map>

#include "host/auth/permissions.h"

namespace quern::auth {
namespace {

TEST(Permissions, RoleNamesRoundTrip) {
  EXPECT_STREQ(to_string(Role::admin), "admin");
  EXPECT_STREQ(to_string(Role::developer), "developer");
  EXPECT_STREQ(to_string(Role::operator_), "operator");
  EXPECT_STREQ(to_string(Role::agent), "agent");
  for (Role r : all_roles()) EXPECT_EQ(role_from_string(to_string(r)), r);
  EXPECT_EQ(role_from_string("operator_"), std::nullopt);
  EXPECT_EQ(role_from_string("Admin"), std::nullopt);
  EXPECT_EQ(role_from_string(""), std::nullopt);
}

TEST(Permissions, TableEveryRoleEveryPermission) {
  // 1 = allowed. Columns: admin developer operator agent.
  const std::map<std::string, std::array<int, 4>> expected = {
      {"scripts.read", {1, 1, 1, 0}},    {"scripts.write", {1, 1, 0, 0}}, {"jobs.run", {1, 1, 1, 0}},
      {"jobs.run_inline", {1, 1, 0, 0}}, {"jobs.read", {1, 1, 1, 0}},     {"jobs.cancel", {1, 1, 1, 0}},
      {"queue.read", {1, 1, 1, 0}},      {"workers.read", {1, 1, 1, 0}},  {"tokens.manage", {1, 0, 0, 0}},
      {"docs.read", {1, 1, 1, 0}},       {"agent", {0, 0, 0, 1}},         {"schedules.read", {1, 1, 1, 0}},
      {"schedules.write", {1, 1, 0, 0}},
      {"autoscale.read", {1, 1, 1, 0}},
      {"session.read", {1, 1, 1, 0}},
  };
  const Role roles[] = {Role::admin, Role::developer, Role::operator_, Role::agent};
  ASSERT_EQ(all_permissions().size(), expected.size());
  for (const std::string& p : all_permissions()) {
    auto it = expected.find(p);
    ASSERT_NE(it, expected.end()) << "permission not in the expected table: " << p;
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(allowed(roles[i], p), it->second[i] == 1) << to_string(roles[i]) << " × " << p;
  }
}

TEST(Permissions, UnknownPermissionIsDeniedToEveryone) {
  for (Role r : all_roles()) {
    EXPECT_FALSE(allowed(r, "")) << to_string(r);
    EXPECT_FALSE(allowed(r, "scripts")) << to_string(r);
    EXPECT_FALSE(allowed(r, "Scripts.read")) << to_string(r);
    EXPECT_FALSE(allowed(r, "scripts.read ")) << to_string(r);
    EXPECT_FALSE(allowed(r, "admin")) << to_string(r);
  }
}

}  // namespace
}  // namespace quern::auth
