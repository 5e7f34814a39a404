// `quern`: one binary for every role (up, worker, run, plugins, version).
#include <iostream>

#include "host/cli/commands.h"
#include "quern/executor.h"

#ifndef QUERN_VERSION
#define QUERN_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
  CLI::App app{"Quern: a job orchestrator on PostgreSQL"};
  app.require_subcommand(1);
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
