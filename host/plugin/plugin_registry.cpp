// Implementation of plugin_registry.h: loading and validating executor
// plugins (the callbacks a job gets are in job_callbacks.cpp).
#include "host/plugin/plugin_registry.h"

#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <boost/dll/shared_library.hpp>
#include <cstddef>
#include <cstring>
#include <exception>
#include <system_error>
#include <utility>

#include "host/plugin/descriptor.h"
#include "host/plugin/job_callbacks.h"

namespace quern::plugin {

// The dll handle plus the validated copy of the descriptor. Immutable after
// load_file, so it may be shared between threads freely.
class LoadedLibrary {
 public:
  boost::dll::shared_library library;
  // Zero-filled, then min(plugin struct_size, sizeof) bytes copied from the
  // plugin: fields the plugin does not have read as NULL / 0.
  quern_executor_descriptor desc{};
  PluginInfo info;
};

namespace {

constexpr std::size_t kErrbufSize = 1024;
// resources(): the first buffer fits any ordinary answer; a longer one is
// asked for again with room, up to a limit that no capacity description
// needs (a plugin that reports more is refusing to be sensible).
constexpr std::size_t kResourcesFirstBuffer = 4096;
constexpr int64_t kResourcesMaxBytes = 1 << 20;

std::string errbuf_text(const char* data, std::size_t size) {
  // The plugin promises NUL-termination; do not rely on it.
  std::size_t n = strnlen(data, size);
  return n == 0 ? std::string("(no message)") : std::string(data, n);
}
std::string errbuf_text(const std::array<char, kErrbufSize>& buf) {
  return errbuf_text(buf.data(), buf.size());
}

quern_str to_str(const std::string& s) { return quern_str{s.data(), static_cast<uint64_t>(s.size())}; }

}  // namespace

// ---- Executor ----

Executor::Executor(std::shared_ptr<const LoadedLibrary> lib, quern_instance* instance)
    : lib_(std::move(lib)), instance_(instance) {}

Executor::~Executor() {
  // destroy runs while lib_ still holds the library; it may be the last
  // reference, released after this body.
  if (instance_ != nullptr) lib_->desc.destroy(instance_);
}

const PluginInfo& Executor::info() const { return lib_->info; }

quern_status Executor::execute(const std::string& job_json, JobSink& sink) {
  JobCall call(sink, job_json);
  int32_t rc = lib_->desc.execute(instance_, to_str(job_json), JobCall::callbacks(), call.ctx());
  switch (rc) {
    case QUERN_STATUS_SUCCESS:
    case QUERN_STATUS_FAILURE:
    case QUERN_STATUS_CANCELED:
    case QUERN_STATUS_TIMEOUT:
    case QUERN_STATUS_INTERNAL:
      return static_cast<quern_status>(rc);
    default:
      sink.set_error("plugin '" + lib_->info.name + "' returned unknown status " + std::to_string(rc));
      return QUERN_STATUS_INTERNAL;
  }
}

Status Executor::prepare(const std::string& script_json) {
  if (lib_->desc.prepare == nullptr) return Status::ok();
  std::array<char, kErrbufSize> buf{};
  if (lib_->desc.prepare(instance_, to_str(script_json), quern_errbuf{buf.data(), buf.size()}) == 0)
    return Status::ok();
  return Status::error("plugin '" + lib_->info.name + "': prepare failed: " + errbuf_text(buf));
}

Status Executor::health() {
  if (lib_->desc.health == nullptr) return Status::ok();
  std::array<char, kErrbufSize> buf{};
  if (lib_->desc.health(instance_, quern_errbuf{buf.data(), buf.size()}) == 0) return Status::ok();
  return Status::error("plugin '" + lib_->info.name + "': unhealthy: " + errbuf_text(buf));
}

void Executor::interrupt() {
  if (lib_->desc.interrupt != nullptr) lib_->desc.interrupt(instance_);
}

StatusOr<nlohmann::json> Executor::resources() {
  // NULL also for a 1.0 plugin: load_file zero-fills what struct_size lacks.
  if (lib_->desc.resources == nullptr) return nlohmann::json(nullptr);
  const std::string who = "plugin '" + lib_->info.name + "': resources";
  std::string buf(kResourcesFirstBuffer, '\0');
  // Twice at most: the second buffer has the size the first call asked for.
  for (int call = 0; call < 2; ++call) {
    const int64_t n = lib_->desc.resources(instance_, quern_errbuf{buf.data(), buf.size()});
    if (n < 0) return Status::error(who + " failed: " + errbuf_text(buf.data(), buf.size()));
    if (n > kResourcesMaxBytes)
      return Status::error(who + ": " + std::to_string(n) + " bytes, more than the limit of " +
                           std::to_string(kResourcesMaxBytes));
    if (static_cast<uint64_t>(n) < buf.size())
      return parse_resources(std::string_view(buf.data(), static_cast<size_t>(n)), who);
    buf.assign(static_cast<std::size_t>(n) + 1, '\0');
  }
  return Status::error(who + ": the text grew between two calls");
}

// ---- LoadedPlugin ----

LoadedPlugin::LoadedPlugin(std::shared_ptr<const LoadedLibrary> lib) : lib_(std::move(lib)) {}

const PluginInfo& LoadedPlugin::info() const { return lib_->info; }

StatusOr<std::unique_ptr<Executor>> LoadedPlugin::create(const std::string& config_json) const {
  std::array<char, kErrbufSize> buf{};
  quern_instance* instance = nullptr;
  int32_t rc = lib_->desc.create(to_str(config_json), &instance, quern_errbuf{buf.data(), buf.size()});
  const std::string who = "plugin '" + lib_->info.name + "' (" + lib_->info.file.string() + ")";
  if (rc != 0) return Status::error(who + ": create failed: " + errbuf_text(buf));
  if (instance == nullptr) return Status::error(who + ": create returned no instance");
  return std::unique_ptr<Executor>(new Executor(lib_, instance));
}

bool LoadedPlugin::reports_resources() const { return lib_->desc.resources != nullptr; }

// ---- PluginRegistry ----

PluginRegistry::PluginRegistry() = default;
PluginRegistry::~PluginRegistry() = default;

Status PluginRegistry::load_file(const std::filesystem::path& file) {
  namespace dll = boost::dll;
  auto lib = std::make_shared<LoadedLibrary>();

  // An absolute path: dlopen must not search the system folders for it.
  std::error_code abs_ec;
  std::filesystem::path abs = std::filesystem::absolute(file, abs_ec);
  if (abs_ec) abs = file;
  dll::fs::error_code ec;
  dlerror();  // clear a stale message
  lib->library.load(dll::fs::path(abs.native()), dll::load_mode::rtld_now | dll::load_mode::rtld_local, ec);
  if (ec || !lib->library.is_loaded()) {
    const char* why = dlerror();
    return refuse(file, std::string("not loadable: ") + (why != nullptr ? why : ec.message()));
  }

  if (!lib->library.has(QUERN_EXECUTOR_ENTRY_V1_NAME)) {
    // Name the ABI it was built for when the entry of another major is there.
    for (int major = 2; major <= 9; ++major) {
      if (lib->library.has("quern_executor_entry_v" + std::to_string(major)))
        return refuse(file, "built for ABI " + std::to_string(major) + ", host speaks " +
                                std::to_string(QUERN_ABI_MAJOR));
    }
    return refuse(file, "no entry symbol '" QUERN_EXECUTOR_ENTRY_V1_NAME "'");
  }
  auto& entry = lib->library.get<const quern_executor_descriptor*()>(QUERN_EXECUTOR_ENTRY_V1_NAME);
  const quern_executor_descriptor* remote = entry();
  if (remote == nullptr) return refuse(file, "entry function returned NULL");

  if (Status s = read_descriptor(remote, file, lib->desc, lib->info); !s) return s;
  const quern_executor_descriptor& d = lib->desc;
  if (const LoadedPlugin* other = by_name(d.name))
    return refuse(file, std::string("duplicate plugin name '") + d.name + "', already loaded from '" +
                            other->info().file.string() + "'");
  // One plugin per language: which one would run a job must not depend on
  // load order silently.
  for (const auto& language : lib->info.languages) {
    if (const LoadedPlugin* other = for_language(language))
      return refuse(file, "plugin '" + lib->info.name + "' claims language '" + language +
                              "', which plugin '" + other->info().name + "' from '" +
                              other->info().file.string() + "' already serves");
  }

  // Accepted: a 1.2 plugin learns the ABI this host speaks before any create.
  if (d.host_abi != nullptr) d.host_abi(QUERN_ABI_MAJOR, QUERN_ABI_MINOR);
  plugins_.push_back(std::unique_ptr<LoadedPlugin>(new LoadedPlugin(std::move(lib))));
  return Status::ok();
}

bool PluginRegistry::is_plugin_file_name(const std::filesystem::path& file) {
  const std::string name = file.filename().string();
  constexpr std::string_view kPrefix = "libquern_", kSuffix = ".so";
  return name.size() > kPrefix.size() + kSuffix.size() && name.compare(0, kPrefix.size(), kPrefix) == 0 &&
         name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

StatusOr<PluginRegistry::DirectoryListing> PluginRegistry::list_directory(const std::filesystem::path& dir) {
  std::error_code ec;
  DirectoryListing out;
  std::filesystem::directory_iterator it(dir, ec), end;
  if (ec) return Status::error("plugin directory '" + dir.string() + "': " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Status::error("plugin directory '" + dir.string() + "': " + ec.message());
    std::error_code type_ec;
    if (it->path().extension() != ".so" || !it->is_regular_file(type_ec)) continue;
    (is_plugin_file_name(it->path()) ? out.plugins : out.ignored).push_back(it->path());
  }
  std::sort(out.plugins.begin(), out.plugins.end());
  std::sort(out.ignored.begin(), out.ignored.end());
  return out;
}

Status PluginRegistry::load_directory(const std::filesystem::path& dir,
                                      std::vector<std::filesystem::path>* ignored) {
  auto listing = list_directory(dir);
  if (!listing) return listing.status();
  if (ignored != nullptr) *ignored = listing->ignored;
  std::string errors;
  for (const auto& file : listing->plugins) {
    Status s = load_file(file);
    if (!s.is_ok()) errors += (errors.empty() ? "" : "\n") + s.message();
  }
  return errors.empty() ? Status::ok() : Status::error(errors);
}

const LoadedPlugin* PluginRegistry::for_language(std::string_view language) const {
  for (const auto& p : plugins_) {
    const auto& langs = p->info().languages;
    if (std::find(langs.begin(), langs.end(), language) != langs.end()) return p.get();
  }
  return nullptr;
}

const LoadedPlugin* PluginRegistry::by_name(std::string_view name) const {
  for (const auto& p : plugins_)
    if (p->info().name == name) return p.get();
  return nullptr;
}

StatusOr<nlohmann::json> PluginRegistry::resources(std::string_view name,
                                                   const std::string& config_json) const {
  const LoadedPlugin* p = by_name(name);
  if (p == nullptr) return Status::error("no plugin named '" + std::string(name) + "'");
  if (!p->reports_resources()) return nlohmann::json(nullptr);
  auto created = p->create(config_json);
  if (!created) return created.status();
  return created.value()->resources();
}

}  // namespace quern::plugin
