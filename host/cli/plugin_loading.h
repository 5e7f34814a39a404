// Which plugin files a `quern` command loads, and what a refused one does to
// its start (docs/CONFIG.md, <plugins>; docs/PLUGINS.md, "What the host
// refuses"):
//
//  - The plugin directory's plugins are its libquern_NAME.so files; other
//    *.so files there are not plugins and are skipped (listed as ignored).
//    <plugin path> entries load whatever their file is called.
//  - A file the registry refuses stops the command only when the
//    configuration needs it: it is a <plugin path> entry, or the `plugins`
//    list of a worker group the command runs names its plugin (NAME of
//    libquern_NAME.so). Any other refused file is a warning (the command
//    logs it) and the command goes on without it: a broken or duplicate file
//    nobody asked for must not stop the workers that do not use it.
//
// Thread-safety: call from the command's main thread (loading is not
// thread-safe, see plugin_registry.h).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "host/common/status.h"
#include "host/config/config.h"
#include "host/plugin/plugin_registry.h"

namespace quern::cli {

// The plugin directory: config/CLI, else next to the binary
// (<bin>/../plugins in a build tree, <bin>/../lib/quern/plugins installed).
std::filesystem::path effective_plugin_dir(const config::Config& cfg);

// The plugin name a file stands for before it is loaded: NAME for
// libquern_NAME.so, else the file name without "lib" and extension.
std::string plugin_name_of_file(const std::filesystem::path& file);

// Why the configuration needs `file` for a command that runs `group` (null:
// no group of its own, e.g. `quern agent`): "it is a <plugin path> entry",
// "worker group 'g' lists plugin 'x'"; "" when it does not.
std::string needed_by(const config::Config& cfg, const std::filesystem::path& file,
                      const config::WorkerGroup* group);

// A file the registry refused.
struct PluginRefusal {
  std::filesystem::path file;
  std::string message;    // the registry's "plugin '<file>' refused: <reason>"
  std::string needed_by;  // needed_by(...): "" = the command can go on without it
};

// What loading found besides the plugins it registered.
struct LoadReport {
  std::vector<PluginRefusal> refused;
  std::vector<std::filesystem::path> ignored;  // *.so in the directory not named libquern_*.so
  std::vector<std::string> errors;             // not about one file: no directory, a listed plugin not found
};

// Loads the plugin directory and the <plugin path> entries (a file that is
// both is loaded once), for a command that runs no group of its own: only
// <plugin path> entries are needed.
LoadReport load_plugins(const config::Config& cfg, plugin::PluginRegistry& registry);

// Loads the plugins the group enables: every plugin (load_plugins) when its
// list is empty, else only the plugin files of the directory and the
// <plugin path> entries whose plugin_name_of_file is listed (a plugin the
// group does not enable is never dlopen'ed). A listed plugin found nowhere
// is an error of the report.
LoadReport load_group_plugins(const config::Config& cfg, const config::WorkerGroup& group,
                              plugin::PluginRegistry& registry);

// Appends `from` to `into`, once per refused file (`quern up` loads the same
// directory once per group): needed when any group needs it.
void merge_reports(LoadReport& into, const LoadReport& from);

// The policy: an error (every line: the report's errors, each needed refusal
// with why it is needed) when the command must not start; else OK, with one
// warning appended to `warnings` per refusal it can go on without (the
// command logs them).
Status apply_load_policy(const LoadReport& report, std::vector<std::string>& warnings);

// Plugin configs by plugin name, from <plugin> entries.
std::map<std::string, std::string> plugin_configs(const config::Config& cfg,
                                                  const plugin::PluginRegistry& registry);

}  // namespace quern::cli
