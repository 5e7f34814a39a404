// Implementation of worker_groups.h.
#include "host/cli/worker_groups.h"

#include <algorithm>

#include "host/cli/common.h"
#include "host/log/log.h"
#include "host/service/notify.h"
#include "host/worker/gpu_capacity.h"

namespace quern::cli {

void ping_watchdog_from_heartbeats(worker::WorkerOptions& options) {
  const auto every = std::chrono::duration_cast<std::chrono::milliseconds>(service::watchdog_interval());
  if (every.count() <= 0) return;
  options.heartbeat_interval =
      std::max(std::chrono::milliseconds(100), std::min(options.heartbeat_interval, every));
  options.on_heartbeat = [] { service::notify("WATCHDOG=1"); };
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

StatusOr<config::WorkerGroup> find_group(const config::Config& cfg, const std::string& name) {
  std::vector<std::string> names;
  for (const auto& g : cfg.groups) {
    if (g.name == name) return g;
    names.push_back(g.name);
  }
  const std::string from = cfg.source.empty() ? "the built-in groups" : cfg.source.string();
  return Status::error("no worker group '" + name + "' in " + from + " (groups: " + join(names) + ")");
}

config::WorkerGroup apply_group_change(worker::Worker& w, const config::WorkerGroup& before,
                                       const config::WorkerGroup& after) {
  const log::Fields fields{.worker = w.id()};
  config::WorkerGroup now = before;
  if (after.tags != before.tags) {
    if (Status s = w.set_tags(after.tags); s) {
      now.tags = after.tags;
      log::info("worker", "tags " + join(before.tags, ",") + " -> " + join(after.tags, ","), fields);
    } else {
      log::warning("worker", "keeping tags " + join(before.tags, ",") + ": " + s.message(), fields);
    }
  }
  if (after.slots != before.slots) {
    if (Status s = w.set_slots(after.slots); s) {
      now.slots = after.slots;
      log::info("worker", "slots " + std::to_string(before.slots) + " -> " + std::to_string(after.slots),
                fields);
    } else {
      log::warning("worker", "keeping " + std::to_string(before.slots) + " slots: " + s.message(), fields);
    }
  }
  // What a running worker cannot change: said, and left for a restart.
  auto needs_restart = [&](const std::vector<std::string>& a, const std::vector<std::string>& b,
                           const char* what) {
    if (a != b)
      log::warning("worker", std::string(what) + " changed to [" + join(a) + "]: needs a restart", fields);
  };
  needs_restart(after.plugins, before.plugins, "plugins");
  needs_restart(after.pass_env, before.pass_env, "pass-env");
  needs_restart(after.in_process, before.in_process, "in-process plugins");
  needs_restart(after.dedicated, before.dedicated, "dedicated scripts");
  needs_restart({after.sandbox, after.network}, {before.sandbox, before.network}, "sandbox, network");
  auto limits = [](const config::WorkerGroup& g) {
    return std::vector<std::string>{std::to_string(g.memory_max),    std::to_string(g.pids_max),
                                    std::to_string(g.cpu_max_milli), std::to_string(g.tmp_size),
                                    std::to_string(g.nofile),        g.job_user};
  };
  needs_restart(limits(after), limits(before), "memory-max, pids-max, cpu-max, tmp-size, nofile, job-user");
  return now;
}

std::vector<std::string> servable_tags(std::vector<std::string> tags, bool has_gpus) {
  if (!has_gpus) tags.erase(std::remove(tags.begin(), tags.end(), "gpu"), tags.end());
  return tags;
}

std::string apply_gpu_capacity(const plugin::PluginRegistry& registry, worker::WorkerOptions& options) {
  options.gpu_devices_mb.clear();
  std::string why = "no gpu plugin loaded";
  if (registry.by_name("gpu") != nullptr) {
    const auto cfg = options.plugin_configs.find("gpu");
    auto resources = registry.resources("gpu", cfg == options.plugin_configs.end() ? "{}" : cfg->second);
    auto capacity = resources ? worker::gpu_capacity_from_resources(
                                    resources->is_null() ? nlohmann::json::object() : *resources)
                              : StatusOr<worker::GpuCapacity>(resources.status());
    if (capacity) {
      options.gpu_devices_mb = capacity->memory_mb;
      why = "the gpu plugin reports none";
    } else {
      why = "the gpu plugin's resources: " + capacity.message();
    }
  }
  const bool served = std::find(options.tags.begin(), options.tags.end(), "gpu") != options.tags.end();
  if (!options.gpu_devices_mb.empty())
    return std::to_string(options.gpu_devices_mb.size()) + " GPU(s) for gpu jobs";
  options.tags = servable_tags(std::move(options.tags), false);
  return served ? "no GPUs (" + why + "): not serving tag gpu" : "";
}

}  // namespace quern::cli
