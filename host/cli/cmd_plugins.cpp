// `quern plugins`: what the loader accepted (and refused), and the capacity
// the plugins that report resources (ABI 1.1) offer.
#include <iostream>
#include <nlohmann/json.hpp>

#include "host/cli/commands.h"

namespace quern::cli {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

// One line for what a plugin reports through `resources` (ABI 1.1):
// "2 GPUs (0: 81920 MB, 1: 81920 MB)"; kinds this host does not know are
// shown as their JSON.
std::string describe_resources(const nlohmann::json& resources) {
  std::string out;
  for (const auto& [kind, value] : resources.items()) {
    std::string part;
    if (kind == "gpus" && value.is_array()) {
      part = std::to_string(value.size()) + (value.size() == 1 ? " GPU" : " GPUs");
      std::string devices;
      for (const auto& d : value) {
        if (!d.is_object()) continue;
        devices += (devices.empty() ? "" : ", ") + d.value("index", nlohmann::json()).dump() + ": " +
                   d.value("memory_mb", nlohmann::json()).dump() + " MB";
      }
      if (!devices.empty()) part += " (" + devices + ")";
    } else {
      // Unknown kinds in full could fill the screen: their start is enough.
      std::string text = value.dump();
      if (text.size() > 60) text = text.substr(0, 57) + "...";
      part = kind + "=" + text;
    }
    out += (out.empty() ? "" : "; ") + part;
  }
  return out.empty() ? "nothing" : out;
}

// The plugins that report resources, each through a short-lived instance
// with its configured settings (no database needed).
void print_resources(const plugin::PluginRegistry& registry, const config::Config& cfg) {
  const auto configs = plugin_configs(cfg, registry);
  bool header = false;
  for (const auto& p : registry.plugins()) {
    if (!p->reports_resources()) continue;
    const auto& i = p->info();
    if (!header) std::printf("\nRESOURCES\n");
    header = true;
    auto cfg_it = configs.find(i.name);
    auto r = registry.resources(i.name, cfg_it == configs.end() ? "{}" : cfg_it->second);
    const std::string text = r ? describe_resources(*r) : "unavailable: " + r.message();
    std::printf("%s (ABI %u.%u): %s\n", i.name.c_str(), unsigned{i.abi_major}, unsigned{i.abi_minor},
                text.c_str());
  }
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
  print_resources(registry, *cfg);
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
