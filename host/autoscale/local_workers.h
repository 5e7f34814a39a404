// integration="local": `quern worker` processes of one group on this
// machine, started and stopped by the controller (in `quern up`).
//
// Each worker is `<quern> worker --config F --database-url U --group G
// --worker-id G-<pid>-<n>` (plus the data and plugin folders when given),
// with the same stdout/stderr as its parent, in its own process group, and
// sent SIGTERM if its parent dies (PR_SET_PDEATHSIG): a killed `quern up`
// leaves no worker behind, and a TERM is the worker's graceful stop.
//
// Scale-in never interrupts work: the workers to stop are chosen idle first
// (by the running count each worker reports in quern.workers; one that has
// not registered yet runs nothing), then the least busy; each is sent
// SIGTERM, on which a worker stops claiming, finishes its running jobs
// within its shutdown grace and hands back the rest (docs/OPERATIONS.md), so
// no job is lost or run twice. A stopping worker no longer counts toward the
// group's count; reconcile() reaps it. A worker that exits on its own
// (crash, kill) is replaced at the next tick.
//
// Thread-safety: the controller thread only.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "host/autoscale/integration.h"

namespace quern::autoscale {

struct LocalWorkersOptions {
  std::filesystem::path quern_binary;  // empty: this process's own (/proc/self/exe)
  std::filesystem::path config_file;   // the config the group comes from
  std::string database_url;
  std::string data_dir, plugin_dir;  // passed on when not empty
  // How long shutdown() waits for stopping workers before SIGKILL.
  std::chrono::milliseconds stop_wait{60000};
  // Called with a worker's id once its process has ended and been reaped:
  // what a killed worker left (its job cgroups' processes, its directories)
  // is for its parent to end, since no worker of that id comes back.
  std::function<void(const std::string& worker_id)> on_worker_gone;
};

std::unique_ptr<Integration> make_local_workers(const config::WorkerGroup& group,
                                                LocalWorkersOptions options);

}  // namespace quern::autoscale
