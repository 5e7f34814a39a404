// Where a worker slot runs its plugin's code. Either in the worker's own
// process (InProcessExecutor: fastest, but a crash in the plugin takes the
// worker down), or in a slot process of its own (SlotProcess,
// slot_process.h: a crash fails only the job it was running). The worker
// holds one JobExecutor per plugin per slot and talks only to this
// interface; docs/ARCHITECTURE.md §7 says which is the default and why.
//
// Thread-safety: execute() and prepare() on the slot's thread, one at a
// time; stop() and kill() from any thread (the worker's watchdog) while
// execute() runs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "host/common/status.h"
#include "host/plugin/plugin_registry.h"

namespace quern::slot {

class JobExecutor {
 public:
  virtual ~JobExecutor() = default;
  // Runs one job; what it reports goes to sink. A plugin that crashed (its
  // slot process died) is QUERN_STATUS_FAILURE with the reason in the
  // sink's error, and the executor is dead(): make a new one.
  virtual quern_status execute(const std::string& job_json, plugin::JobSink& sink) = 0;
  virtual Status prepare(const std::string& script_json) = 0;
  // The plugin's health(): OK when healthy (or it has no health()).
  virtual Status health() = 0;
  // The host decided the job must stop (`reason`: QUERN_TIMEOUT_REACHED,
  // QUERN_CANCEL_REQUESTED, QUERN_SHUTDOWN): what is_cancelled() answers
  // from now on, and the plugin's interrupt().
  virtual void stop(int32_t reason) = 0;
  // The plugin ignored the stop past its grace: end it now if it can be
  // ended without ending the worker (a slot process is killed; in-process
  // code cannot be).
  virtual void kill() = 0;
  // False once the executor cannot run another job (its process died).
  virtual bool alive() const = 0;
};

// The plugin's own instance, in this process.
class InProcessExecutor final : public JobExecutor {
 public:
  explicit InProcessExecutor(std::unique_ptr<plugin::Executor> e) : e_(std::move(e)) {}
  quern_status execute(const std::string& job_json, plugin::JobSink& sink) override {
    return e_->execute(job_json, sink);
  }
  Status prepare(const std::string& script_json) override { return e_->prepare(script_json); }
  Status health() override { return e_->health(); }
  // is_cancelled() reads the job's own flag, which the worker set already.
  void stop(int32_t) override { e_->interrupt(); }
  void kill() override {}
  bool alive() const override { return true; }

 private:
  std::unique_ptr<plugin::Executor> e_;
};

}  // namespace quern::slot
