// Worker groups for `quern worker` and `quern up`: picking a group from the
// config and applying a reloaded config to a running worker (SIGHUP;
// docs/ROUTING.md, "Reload"). Loading only the plugins a group enables is
// plugin_loading.h's load_group_plugins.
//
// Thread-safety: call from the command's main thread.
#pragma once

#include <string>
#include <vector>

#include "host/common/status.h"
#include "host/config/config.h"
#include "host/plugin/plugin_registry.h"
#include "host/worker/worker.h"

namespace quern::cli {

// The group called `name`; the error names the config file and lists the
// groups it has.
StatusOr<config::WorkerGroup> find_group(const config::Config& cfg, const std::string& name);

// What a running worker of group `before` does when the config now says
// `after`: new tags and slot counts are applied at once (Worker::set_tags,
// set_slots); plugin, pass-env and dedicated changes are logged as needing a
// restart. Every change is logged (component "worker", with w's id). Returns
// the group the worker now runs as: `before` with what was applied taken
// from `after`.
config::WorkerGroup apply_group_change(worker::Worker& w, const config::WorkerGroup& before,
                                       const config::WorkerGroup& after);

// Reads the GPUs the loaded gpu plugin offers (ABI 1.1 resources, with its
// settings from options.plugin_configs, so set those first) into
// options.gpu_devices_mb. A worker without any GPU does not serve the tag
// "gpu" (servable_tags): it could never claim those jobs, and the queue
// statistics must not count it as serving them. Returns a line to log, or "".
std::string apply_gpu_capacity(const plugin::PluginRegistry& registry, worker::WorkerOptions& options);
// `tags` without "gpu" when the worker has no GPU (reloads use it too).
std::vector<std::string> servable_tags(std::vector<std::string> tags, bool has_gpus);

// "a, b, c".
// Under a service manager's watchdog (systemd WatchdogSec=, host/service):
// pings it from every heartbeat round, at least as often as it asks.
void ping_watchdog_from_heartbeats(worker::WorkerOptions& options);

std::string join(const std::vector<std::string>& items, const std::string& separator = ", ");

}  // namespace quern::cli
