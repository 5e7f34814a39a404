// `quern`: one binary for every role (up, worker, run, plugins, version).
#include <iostream>
#include <memory>
#include <string>

#include "host/cli/commands.h"
#include "host/log/log.h"
#include "quern/executor.h"

#ifndef QUERN_VERSION
#define QUERN_VERSION "0.0.0"
#endif

namespace {

// --log-level and --log-format (docs/OPERATIONS.md, "Logs"), options of the
// app itself: they may stand before or after the subcommand (fallthrough).
// CLI11 runs the app's parse-complete callback before any subcommand's
// callback, so every command's records use them. A bad value exits 2.
void add_log_options(CLI::App& app) {
  auto level = std::make_shared<std::string>("info");
  auto format = std::make_shared<std::string>("text");
  app.add_option("--log-level", *level, "Log records of this severity and above: debug, info, warning, error")
      ->envname("QUERN_LOG_LEVEL")
      ->capture_default_str();
  app.add_option("--log-format", *format, "Log lines as text, or json (one object per line)")
      ->envname("QUERN_LOG_FORMAT")
      ->capture_default_str();
  app.fallthrough();
  app.parse_complete_callback([level, format] {
    quern::log::Options options;
    auto severity = quern::log::parse_severity(*level);
    if (!severity) throw CLI::ValidationError("quern: --log-level: " + severity.message(), 2);
    options.level = *severity;
    if (quern::Status s = quern::log::parse_format(*format, options); !s)
      throw CLI::ValidationError("quern: --log-format: " + s.message(), 2);
    quern::log::configure(options);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Quern: a job orchestrator on PostgreSQL"};
  app.require_subcommand(1);
  add_log_options(app);
  int exit_code = 0;
  quern::cli::register_up(app, &exit_code);
  quern::cli::register_worker(app, &exit_code);
  quern::cli::register_run(app, &exit_code);
  quern::cli::register_plugins(app, &exit_code);
  quern::cli::register_server(app, &exit_code);
  quern::cli::register_client(app, &exit_code);
  quern::cli::register_route(app, &exit_code);
  quern::cli::register_schedule(app, &exit_code);
  quern::cli::register_prune(app, &exit_code);
  quern::cli::register_migrate(app, &exit_code);
  quern::cli::register_autoscale(app, &exit_code);
  app.add_subcommand("version", "Print the version and the plugin ABI")->callback([] {
    std::cout << "quern " << QUERN_VERSION << " (plugin ABI " << QUERN_ABI_MAJOR << "." << QUERN_ABI_MINOR
              << ")\n";
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
