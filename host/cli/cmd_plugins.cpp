// `quern plugins`: what the loader accepted (and refused, and skipped as no
// plugin), and the capacity the plugins that report resources (ABI 1.1)
// offer. `quern plugins --check FILE`: one file as a worker would use it —
// loaded, created with its configured settings, asked for its resources and
// health — with the first failure as the exit status.
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

std::string capability_names(uint64_t caps) {
  std::string out;
  if (caps & QUERN_CAP_DEDICATED) out += "dedicated,";
  if (caps & QUERN_CAP_SPAWNS_PROCESSES) out += "spawns-processes,";
  if (caps & ~uint64_t{QUERN_CAP_DEDICATED | QUERN_CAP_SPAWNS_PROCESSES}) out += "unknown bits,";
  if (out.empty()) return "none";
  out.pop_back();
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

// Each worker group of the config: the plugins it runs in its own process
// and how its jobs are confined, as its workers would say it at start.
void print_groups(const config::Config& cfg) {
  std::printf("\nGROUPS\n");
  for (const auto& g : cfg.groups) {
    worker::WorkerOptions o = worker_options_for(cfg, g, "");
    (void)sandbox::resolve_job_user(o.sandbox);  // a missing user is the worker's error to give
    std::printf("%-12s in-process %s; jobs: %s\n", g.name.c_str(),
                g.in_process.empty() ? "none" : join(g.in_process).c_str(),
                sandbox::describe(o.sandbox).c_str());
  }
}

int list_plugins(const CommonOptions& common) {
  auto cfg = load_effective_config(common);
  if (!cfg) {
    std::cerr << "quern plugins: " << cfg.message() << "\n";
    return 2;
  }
  plugin::PluginRegistry registry;
  const LoadReport report = load_plugins(*cfg, registry);
  std::printf("%-12s %-10s %-5s %-16s %-16s %s\n", "NAME", "VERSION", "ABI", "LANGUAGES", "TAGS", "FILE");
  for (const auto& p : registry.plugins()) {
    const auto& i = p->info();
    std::string abi = std::to_string(i.abi_major) + "." + std::to_string(i.abi_minor);
    std::printf("%-12s %-10s %-5s %-16s %-16s %s\n", i.name.c_str(), i.version.c_str(), abi.c_str(),
                join(i.languages).c_str(), join(i.tags).c_str(), i.file.c_str());
  }
  print_resources(registry, *cfg);
  print_groups(*cfg);
  if (!report.ignored.empty()) {
    std::printf("\nNOT PLUGINS (a plugin directory loads only libquern_*.so)\n");
    for (const auto& f : report.ignored) std::printf("%s\n", f.c_str());
  }
  if (!report.refused.empty() || !report.errors.empty()) {
    std::cerr << "refused:\n";
    for (const auto& e : report.errors) std::cerr << e << "\n";
    for (const auto& r : report.refused)
      std::cerr << r.message << (r.needed_by.empty() ? "" : " (needed: " + r.needed_by + ")") << "\n";
    return 1;
  }
  return 0;
}

// The <plugin> entry whose settings a worker would give this plugin: the
// entry of the same file, else one whose file stands for the same plugin
// name (a new build checked against the installed one's settings).
const config::PluginEntry* entry_for(const config::Config& cfg, const std::filesystem::path& file,
                                     const std::string& name) {
  for (const auto& e : cfg.plugins) {
    std::error_code ec;
    if (std::filesystem::equivalent(e.path, file, ec)) return &e;
  }
  for (const auto& e : cfg.plugins)
    if (plugin_name_of_file(e.path) == name) return &e;
  return nullptr;
}

int check_plugin(const CommonOptions& common, const std::filesystem::path& file) {
  auto cfg = load_effective_config(common);
  if (!cfg) {
    std::cerr << "quern plugins --check: " << cfg.message() << "\n";
    return 2;
  }
  auto fail = [](const std::string& step, const std::string& why) {
    std::printf("%-13s FAILED\n", step.c_str());
    std::fflush(stdout);  // the rows, then the reason, also on one terminal
    std::cerr << "quern plugins --check: FAILED: " << why << "\n";
    return 1;
  };
  auto row = [](const char* what, const std::string& value) {
    std::printf("%-13s %s\n", what, value.c_str());
  };
  row("file", file.string());
  plugin::PluginRegistry registry;
  if (Status s = registry.load_file(file); !s) return fail("load", s.message());
  const plugin::LoadedPlugin& p = *registry.plugins().front();
  const auto& i = p.info();
  row("name", i.name);
  row("version", i.version);
  row("ABI", std::to_string(i.abi_major) + "." + std::to_string(i.abi_minor) + " (this host: " +
                 std::to_string(QUERN_ABI_MAJOR) + "." + std::to_string(QUERN_ABI_MINOR) + ")");
  row("languages", join(i.languages));
  row("tags", join(i.tags));
  row("capabilities", capability_names(i.capabilities));

  const std::string from = cfg->source.empty() ? "the built-in defaults" : cfg->source.string();
  const config::PluginEntry* entry = entry_for(*cfg, file, i.name);
  const std::string config_json = entry != nullptr ? entry->config_json : "{}";
  row("config",
      config_json + (entry != nullptr ? " (<plugin path=\"" + entry->path.string() + "\"> in " + from + ")"
                                      : " (no <plugin> entry for it in " + from + ")"));
  auto created = p.create(config_json);
  if (!created) return fail("create", created.message());
  row("create", "ok");
  if (p.reports_resources()) {
    auto r = created.value()->resources();
    if (!r) return fail("resources", r.message());
    row("resources", describe_resources(*r));
  } else {
    row("resources", "none reported");
  }
  if (Status h = created.value()->health(); !h) return fail("health", h.message());
  row("health", "ok");

  // Not failures, but what would surprise its user in a worker.
  if (!plugin::PluginRegistry::is_plugin_file_name(file))
    std::printf(
        "note: a plugin directory loads only libquern_*.so files, so this one would be skipped there "
        "(a <plugin path> entry loads it whatever its name)\n");
  else if (plugin_name_of_file(file) != i.name)
    std::printf(
        "note: the file stands for plugin '%s' in a group's plugins list, but the plugin calls itself "
        "'%s': name the file libquern_%s.so\n",
        plugin_name_of_file(file).c_str(), i.name.c_str(), i.name.c_str());
  std::printf("OK\n");
  return 0;
}

}  // namespace

void register_plugins(CLI::App& app, int* exit_code) {
  auto common = std::make_shared<CommonOptions>();
  auto check = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("plugins", "List the executor plugins that load (and why others don't)");
  add_common_options(*cmd, *common);
  cmd->add_option("--check", *check,
                  "Check one plugin file: load it, create an instance with its settings from the config, "
                  "call health(); exit 1 with the reason when anything fails");
  cmd->callback([common, check, exit_code] {
    *exit_code = check->empty() ? list_plugins(*common) : check_plugin(*common, *check);
  });
}

}  // namespace quern::cli
