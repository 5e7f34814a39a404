// Loads executor plugins (shared libraries built against sdk/) and hands out
// executor instances. See docs/ARCHITECTURE.md §7.
//
// Loading uses RTLD_NOW | RTLD_LOCAL, so missing symbols fail at load. A
// library stays loaded while any Executor created from it is alive (each
// Executor holds a shared reference to its library).
//
// Thread-safety: loading is not thread-safe (do it at start-up); after
// loading, the const accessors and LoadedPlugin::create may be called from
// any thread. An Executor is used by one thread at a time, except
// Executor::interrupt which any thread may call.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "host/common/status.h"
#include "quern/executor.h"

namespace quern::plugin {

struct PluginInfo {
  std::string name;
  std::string version;
  uint16_t abi_major = 0;
  uint16_t abi_minor = 0;
  std::vector<std::string> languages;
  std::vector<std::string> tags;
  uint64_t capabilities = 0;
  std::filesystem::path file;
};

// Receives what a running job reports through the ABI callbacks. Methods may
// be called from several plugin threads at once; implementations synchronize.
class JobSink {
 public:
  virtual ~JobSink() = default;
  virtual void log_line(int32_t stream, std::string_view line) = 0;
  virtual void progress(double fraction) = 0;
  virtual int32_t is_cancelled() = 0;  // QUERN_RUNNING / QUERN_CANCEL_REQUESTED / ...
  virtual void set_result(std::string_view json) = 0;
  virtual void set_error(std::string_view message) = 0;
  virtual void set_process_group(int64_t pgid) = 0;
};

class LoadedLibrary;  // internal: the dll handle plus the copied descriptor

// One live plugin instance (quern_instance*).
class Executor {
 public:
  ~Executor();  // calls destroy, then may let the library go
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  const PluginInfo& info() const;
  // Runs one job (blocking). job_json is the JSON document described in
  // docs/PLUGINS.md; the plugin's callbacks report to `sink`, and its ABI 1.2
  // accessors read job_json (job_callbacks.h). Returns the plugin's
  // quern_status; a plugin that returns an unknown value is reported as
  // QUERN_STATUS_INTERNAL.
  quern_status execute(const std::string& job_json, JobSink& sink);
  Status prepare(const std::string& script_json);  // OK when the plugin has no prepare
  Status health();                                 // OK when the plugin has no health
  void interrupt();                                // no-op when the plugin has none
  // The capacity the instance offers (ABI 1.1 `resources`), a JSON object
  // such as {"gpus": [{"index":0,"uuid":"GPU-..","memory_mb":81920}]}; null
  // when the plugin reports none (a 1.0 plugin, or no such function). An
  // error when the call fails or its text is not a JSON object. Not while
  // execute runs on this instance.
  StatusOr<nlohmann::json> resources();

 private:
  friend class LoadedPlugin;
  Executor(std::shared_ptr<const LoadedLibrary> lib, quern_instance* instance);
  std::shared_ptr<const LoadedLibrary> lib_;
  quern_instance* instance_;
};

class LoadedPlugin {
 public:
  const PluginInfo& info() const;
  // Creates an instance with the plugin's config object (JSON text).
  StatusOr<std::unique_ptr<Executor>> create(const std::string& config_json = "{}") const;
  // Whether the descriptor has `resources` (ABI 1.1; its struct_size covers
  // the field and the pointer is set).
  bool reports_resources() const;

 private:
  friend class PluginRegistry;
  explicit LoadedPlugin(std::shared_ptr<const LoadedLibrary> lib);
  std::shared_ptr<const LoadedLibrary> lib_;
};

class PluginRegistry {
 public:
  PluginRegistry();
  ~PluginRegistry();

  // Loads one library, whatever its file name. Refuses, with a message that
  // names the file and the reason: not a loadable shared library, no entry
  // symbol, different ABI major, descriptor shorter than ABI 1.0's, missing
  // required functions (create/destroy/execute) or name, duplicate plugin
  // name, or a language another loaded plugin already serves (the message
  // names both files: the first one loaded keeps it). A plugin it accepts
  // that has `host_abi` (ABI 1.2) is told this host's ABI.
  Status load_file(const std::filesystem::path& file);
  // Loads the plugin files of dir (is_plugin_file_name, regular files or
  // links to them), sorted by name. Other *.so files are not plugins (a
  // plugin's own helper library, say) and are skipped, listed in *ignored
  // when given. Stops at nothing: after trying all files, returns every
  // refusal joined by "\n".
  Status load_directory(const std::filesystem::path& dir,
                        std::vector<std::filesystem::path>* ignored = nullptr);
  // Whether a directory entry is a plugin by its name: libquern_NAME.so, NAME
  // not empty (docs/CONFIG.md, <plugins dir>).
  static bool is_plugin_file_name(const std::filesystem::path& file);
  // The *.so regular files (or links to them) of dir, each list sorted:
  // those is_plugin_file_name accepts, and the others. Error: dir cannot be
  // read (it names dir).
  struct DirectoryListing {
    std::vector<std::filesystem::path> plugins;
    std::vector<std::filesystem::path> ignored;
  };
  static StatusOr<DirectoryListing> list_directory(const std::filesystem::path& dir);

  const std::vector<std::unique_ptr<LoadedPlugin>>& plugins() const { return plugins_; }
  // The plugin that executes this language, or nullptr.
  const LoadedPlugin* for_language(std::string_view language) const;
  const LoadedPlugin* by_name(std::string_view name) const;
  // The capacity plugin `name` offers with this config (Executor::resources):
  // null, without creating anything, when it reports none; else through a
  // short-lived instance of its own, destroyed before returning. Per-slot
  // instances are created lazily at a slot's first job, so a worker reads
  // its capacity at start this way, with the config its slots will get.
  // Error: no such plugin, create failed, or resources failed.
  StatusOr<nlohmann::json> resources(std::string_view name, const std::string& config_json = "{}") const;

 private:
  std::vector<std::unique_ptr<LoadedPlugin>> plugins_;
};

}  // namespace quern::plugin
