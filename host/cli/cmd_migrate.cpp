// `quern migrate [--check]`: brings the database's schema to this binary's
// version, as `quern server` does at start, on its own: for deploy
// pipelines and Kubernetes Jobs that migrate before rolling out servers and
// workers (docs/DEPLOY.md). Safe while servers run: migrations take an
// advisory lock and each runs once. --check changes nothing and says where
// the schema stands.
//
// Exit status: 0 the schema is (now) this binary's version; 1 the database
// failed; 2 bad configuration; 3 the database's schema is newer than this
// binary (upgrade it); 4 with --check, the schema needs migrating.
#include <iostream>
#include <memory>
#include <string>

#include "host/cli/commands.h"
#include "host/queue/migrations.h"
#include "host/queue/queue.h"

namespace quern::cli {
namespace {

struct MigrateArgs {
  CommonOptions common;
  bool check = false;
};

std::string describe(int version) {
  return version == 0 ? std::string("no Quern schema") : "schema version " + std::to_string(version);
}

int migrate_command(const MigrateArgs& a) {
  const auto fail = [](int code, const std::string& message) {
    std::cerr << "quern migrate: " << message << "\n";
    return code;
  };
  auto cfg = load_effective_config(a.common);
  if (!cfg) return fail(2, cfg.message());
  auto url = resolve_database_url(*cfg);
  if (!url) return fail(2, url.message());
  queue::QueueOptions qo;
  qo.application_name = "quern migrate";
  auto q = queue::Queue::connect(*url, qo);
  if (!q) return fail(1, q.message());
  auto before = (*q)->schema_version();
  if (!before) return fail(1, before.message());
  const int latest = queue::latest_schema_version();
  if (*before > latest)
    return fail(3, "the database has " + describe(*before) + ", newer than this binary's " +
                       std::to_string(latest) + " (Quern " QUERN_VERSION "): use the Quern that migrated it");
  if (*before == latest) {
    std::cout << "quern migrate: the database is at schema version " << latest << " (current)\n";
    return 0;
  }
  if (a.check) {
    std::cout << "quern migrate: the database has " << describe(*before) << "; this binary needs version "
              << latest << ": run `quern migrate`\n";
    return 4;
  }
  auto after = (*q)->migrate();
  if (!after) return fail(1, after.message());
  std::cout << "quern migrate: schema version " << *after << " (was " << describe(*before) << ")\n";
  return 0;
}

}  // namespace

void register_migrate(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<MigrateArgs>();
  auto* cmd = app.add_subcommand(
      "migrate", "Bring the database's schema to this version, as the server does at start (docs/DEPLOY.md)");
  add_common_options(*cmd, a->common);
  cmd->add_flag("--check", a->check, "Change nothing: exit 0 when current, 4 when it needs migrating");
  cmd->callback([a, exit_code] { *exit_code = migrate_command(*a); });
}

}  // namespace quern::cli
