// Implementation of plugin_loading.h.
#include "host/cli/plugin_loading.h"

#include <algorithm>
#include <system_error>

namespace quern::cli {
namespace {

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
  std::error_code ec;
  return std::filesystem::equivalent(a, b, ec);
}

bool is_entry(const config::Config& cfg, const std::filesystem::path& file) {
  return std::any_of(cfg.plugins.begin(), cfg.plugins.end(),
                     [&](const config::PluginEntry& e) { return e.path == file || same_file(e.path, file); });
}

// Loads each file once (a <plugin path> entry may be a directory file too),
// recording refusals with why they are needed.
void load_files(const config::Config& cfg, const config::WorkerGroup* group,
                const std::vector<std::filesystem::path>& files, plugin::PluginRegistry& registry,
                LoadReport& report) {
  std::vector<std::filesystem::path> tried;
  for (const auto& file : files) {
    if (std::any_of(tried.begin(), tried.end(),
                    [&](const auto& t) { return t == file || same_file(t, file); }))
      continue;
    tried.push_back(file);
    if (Status s = registry.load_file(file); !s)
      report.refused.push_back({file, s.message(), needed_by(cfg, file, group)});
  }
}

}  // namespace

std::filesystem::path effective_plugin_dir(const config::Config& cfg) {
  if (!cfg.plugin_dir.empty()) return cfg.plugin_dir;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "plugins";
  auto bin = exe.parent_path();
  if (std::filesystem::is_directory(bin.parent_path() / "plugins")) return bin.parent_path() / "plugins";
  return bin.parent_path() / "lib" / "quern" / "plugins";
}

std::string plugin_name_of_file(const std::filesystem::path& file) {
  std::string stem = file.stem().string();
  if (stem.rfind("libquern_", 0) == 0) return stem.substr(9);
  if (stem.rfind("lib", 0) == 0) return stem.substr(3);
  return stem;
}

std::string needed_by(const config::Config& cfg, const std::filesystem::path& file,
                      const config::WorkerGroup* group) {
  if (is_entry(cfg, file)) return "it is a <plugin path> entry";
  const std::string name = plugin_name_of_file(file);
  if (group != nullptr && contains(group->plugins, name))
    return "worker group '" + group->name + "' lists plugin '" + name + "'";
  return "";
}

LoadReport load_plugins(const config::Config& cfg, plugin::PluginRegistry& registry) {
  LoadReport report;
  std::vector<std::filesystem::path> files;
  const auto dir = effective_plugin_dir(cfg);
  if (std::filesystem::is_directory(dir)) {
    auto listing = plugin::PluginRegistry::list_directory(dir);
    if (listing) {
      files = listing->plugins;
      report.ignored = listing->ignored;
    } else {
      report.errors.push_back(listing.message());
    }
  } else if (cfg.plugins.empty()) {
    report.errors.push_back("plugin directory " + dir.string() +
                            " does not exist (set <plugins dir=...> or --plugin-dir)");
  }
  for (const auto& entry : cfg.plugins) files.push_back(entry.path);
  load_files(cfg, nullptr, files, registry, report);
  return report;
}

LoadReport load_group_plugins(const config::Config& cfg, const config::WorkerGroup& group,
                              plugin::PluginRegistry& registry) {
  // Every plugin; with no list to name a file, only <plugin path> entries are needed.
  if (group.plugins.empty()) return load_plugins(cfg, registry);
  // Chosen by file name before loading: a plugin the group does not enable is
  // never dlopen'ed (its libraries, say a GPU driver, need not exist here).
  LoadReport report;
  std::vector<std::filesystem::path> files, ignored;
  const auto dir = effective_plugin_dir(cfg);
  if (auto listing = plugin::PluginRegistry::list_directory(dir); listing) {
    for (const auto& file : listing->plugins)
      if (contains(group.plugins, plugin_name_of_file(file))) files.push_back(file);
    ignored = listing->ignored;
    report.ignored = ignored;
  }
  for (const auto& entry : cfg.plugins)
    if (contains(group.plugins, plugin_name_of_file(entry.path))) files.push_back(entry.path);
  load_files(cfg, &group, files, registry, report);
  for (const auto& name : group.plugins) {
    if (registry.by_name(name) != nullptr) continue;
    const bool refused =
        std::any_of(report.refused.begin(), report.refused.end(),
                    [&](const PluginRefusal& r) { return plugin_name_of_file(r.file) == name; });
    if (refused) continue;  // its refusal says why
    std::string error = "worker group '" + group.name + "' enables plugin '" + name + "', but no libquern_" +
                        name + ".so was found in " + dir.string() + " or among the <plugin path> entries";
    for (const auto& file : ignored)
      if (plugin_name_of_file(file) == name)
        error += " (" + file.filename().string() + " is there, but a plugin file is named libquern_" + name +
                 ".so)";
    report.errors.push_back(error);
  }
  return report;
}

void merge_reports(LoadReport& into, const LoadReport& from) {
  for (const auto& r : from.refused) {
    auto it = std::find_if(into.refused.begin(), into.refused.end(),
                           [&](const PluginRefusal& have) { return have.file == r.file; });
    if (it == into.refused.end()) {
      into.refused.push_back(r);
    } else if (it->needed_by.empty()) {
      it->needed_by = r.needed_by;
    }
  }
  for (const auto& f : from.ignored)
    if (std::find(into.ignored.begin(), into.ignored.end(), f) == into.ignored.end())
      into.ignored.push_back(f);
  for (const auto& e : from.errors)
    if (std::find(into.errors.begin(), into.errors.end(), e) == into.errors.end()) into.errors.push_back(e);
}

Status apply_load_policy(const LoadReport& report, std::vector<std::string>& warnings) {
  std::string fatal;
  for (const auto& e : report.errors) fatal += (fatal.empty() ? "" : "\n") + e;
  for (const auto& r : report.refused)
    if (!r.needed_by.empty())
      fatal += (fatal.empty() ? "" : "\n") + r.message + " (needed: " + r.needed_by + ")";
  if (!fatal.empty()) return Status::error(fatal);
  for (const auto& r : report.refused) {
    warnings.push_back(
        r.message +
        "; skipped, as nothing in the configuration needs it (not a <plugin path> entry, not in "
        "the plugins list of a group run here)");
  }
  return Status::ok();
}

std::map<std::string, std::string> plugin_configs(const config::Config& cfg,
                                                  const plugin::PluginRegistry& registry) {
  std::map<std::string, std::string> out;
  for (const auto& entry : cfg.plugins) {
    for (const auto& loaded : registry.plugins()) {
      if (same_file(loaded->info().file, entry.path)) out[loaded->info().name] = entry.config_json;
    }
  }
  return out;
}

}  // namespace quern::cli
