// `quern plugins`: what the loader accepted (and refused).
#include <iostream>

#include "host/cli/commands.h"

namespace quern::cli {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

int list_plugins(const CommonOptions& common) {
  auto cfg = load_effective_config(common);
  if (!cfg) {
    std::cerr << "quern plugins: " << cfg.message() << "\n";
    return 2;
  }
  plugin::PluginRegistry registry;
  Status loaded = load_plugins(*cfg, registry);
  std::printf("%-12s %-10s %-5s %-16s %-16s %s\n", "NAME", "VERSION", "ABI", "LANGUAGES", "TAGS", "FILE");
  for (const auto& p : registry.plugins()) {
    const auto& i = p->info();
    std::string abi = std::to_string(i.abi_major) + "." + std::to_string(i.abi_minor);
    std::printf("%-12s %-10s %-5s %-16s %-16s %s\n", i.name.c_str(), i.version.c_str(), abi.c_str(),
                join(i.languages).c_str(), join(i.tags).c_str(), i.file.c_str());
  }
  if (!loaded) {
    std::cerr << "refused:\n" << loaded.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

void register_plugins(CLI::App& app, int* exit_code) {
  auto common = std::make_shared<CommonOptions>();
  auto* cmd = app.add_subcommand("plugins", "List the executor plugins that load (and why others don't)");
  add_common_options(*cmd, *common);
  cmd->callback([common, exit_code] { *exit_code = list_plugins(*common); });
}

}  // namespace quern::cli
