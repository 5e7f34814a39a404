// `quern prune [--dry-run]`: deletes, once, the completed jobs and logs the
// config's <retention> no longer keeps (host/retention/retention.h), and
// prints what it deleted, or with --dry-run what it would delete. The same
// pruning `quern server` runs every minute; safe while servers run (they
// share the advisory lock). Exit status: 0 done (or nothing to do, or another
// process was pruning), 1 the database failed, 2 bad configuration.
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <date/date.h>

#include "host/cli/commands.h"
#include "host/retention/retention.h"

namespace quern::cli {

retention::RetentionPolicy retention_policy_for(const config::Config& cfg) {
  retention::RetentionPolicy policy;
  policy.completed_jobs = cfg.retention_completed_jobs;
  policy.logs = cfg.retention_logs;
  return policy;
}

namespace {

struct PruneArgs {
  CommonOptions common;
  bool dry_run = false;
};

std::string cutoff_text(const std::optional<retention::Clock::time_point>& cutoff, const char* what) {
  if (!cutoff) return std::string("(") + what + " retention is off)";
  return std::string("(") + what + " before " +
         date::format("%FT%TZ", std::chrono::floor<std::chrono::seconds>(*cutoff)) + ")";
}

void print_report(const retention::PruneReport& r) {
  std::cout << "quern prune: " << (r.dry_run ? "would delete " : "deleted ") << retention::counts_text(r)
            << "\n";
  std::cout << "  completed jobs: " << r.jobs << "  " << cutoff_text(r.jobs_cutoff, "completed")
            << ", with their logs and attempts\n";
  std::cout << "  log chunks:     " << r.logs << "  " << cutoff_text(r.logs_cutoff, "of jobs completed")
            << (r.jobs_cutoff ? ", and those of the jobs above" : "") << "\n";
  std::cout << "  attempts:       " << r.attempts << "  (of the jobs above)\n";
}

int prune_command(const PruneArgs& a) {
  const auto fail = [](int code, const std::string& message) {
    std::cerr << "quern prune: " << message << "\n";
    return code;
  };
  auto cfg = load_effective_config(a.common);
  if (!cfg) return fail(2, cfg.message());
  const retention::RetentionPolicy policy = retention_policy_for(*cfg);
  if (!policy.enabled()) {
    std::cout << "quern prune: <retention completed-jobs=\"off\" logs=\"off\"/>: nothing to do\n";
    return 0;
  }
  auto url = resolve_database_url(*cfg);
  if (!url) return fail(2, url.message());
  retention::PruneOptions options;
  options.dry_run = a.dry_run;
  auto report = retention::prune(*url, policy, options);
  if (!report) return fail(1, report.message());
  if (report->skipped) {
    std::cout << "quern prune: another process is pruning now (a `quern server`?); nothing done\n";
    return 0;
  }
  print_report(*report);
  return 0;
}

}  // namespace

void register_prune(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<PruneArgs>();
  auto* cmd = app.add_subcommand(
      "prune", "Delete completed jobs and logs older than the config's <retention> (docs/OPERATIONS.md)");
  add_common_options(*cmd, a->common);
  cmd->add_flag("--dry-run", a->dry_run, "Count what would be deleted; delete nothing");
  cmd->callback([a, exit_code] { *exit_code = prune_command(*a); });
}

}  // namespace quern::cli
