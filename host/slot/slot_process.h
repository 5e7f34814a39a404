// A plugin instance in a process of its own (`quern-slot`), so that a crash
// in the plugin — a signal, an abort, an escaped exception, a stack overflow
// — fails only the job it was running, and a plugin that ignores a stop can
// be killed without killing the worker.
//
// The worker starts one slot process per plugin per slot, the first time
// that slot runs a job of the plugin (spawned with quern/process.hpp's
// spawn(): its own process group, killed when the worker's slot thread
// ends). It loads the plugin file, creates the instance with the config,
// and then runs one job at a time: the job document goes in, log lines,
// the job's process group and at the end the status, result and error come
// back (slot_protocol.h). is_cancelled() reads a stop word in a page the
// worker and the slot process share, so a stop costs no message; the
// plugin's interrupt() is one byte on a control socket.
//
// When the process dies during a job, execute() fails the job with
// "plugin 'NAME' crashed with SIGSEGV while running job N (attempt A)"
// (the job's retry policy decides what happens next; it is not a lost
// worker) and the SlotProcess is dead: the worker makes a new one for the
// next job.
//
// Thread-safety: see job_executor.h.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "host/slot/job_executor.h"
#include "host/slot/slot_protocol.h"

namespace quern::slot {

class SlotProcess final : public JobExecutor {
 public:
  // Starts `program` (quern-slot) for plugin `p` with its config, and waits
  // until the instance is created. Errors: the program cannot start, or the
  // plugin refuses the config (the message says why).
  static StatusOr<std::unique_ptr<SlotProcess>> start(const std::filesystem::path& program,
                                                      const plugin::LoadedPlugin& p,
                                                      const std::string& config_json);
  ~SlotProcess() override;  // closes the sockets; SIGKILLs and reaps the process

  quern_status execute(const std::string& job_json, plugin::JobSink& sink) override;
  Status prepare(const std::string& script_json) override;
  Status health() override;
  void stop(int32_t reason) override;
  void kill() override;
  bool alive() const override { return alive_.load(); }
  pid_t pid() const { return pid_; }

 private:
  SlotProcess() = default;
  // The process ended (EOF on its socket): reaps it and says how it died.
  std::string reap();
  // Sends one request frame and reads its answer: "" is OK, else the error.
  Status ask(char request, char answer, const std::string& payload);

  std::string plugin_name_;
  pid_t pid_ = -1;
  int data_fd_ = -1;
  int ctl_fd_ = -1;
  std::atomic<int32_t>* stop_word_ = nullptr;  // in the shared page
  std::unique_ptr<FrameWriter> writer_;
  std::atomic<bool> alive_{true};
  std::atomic<bool> killed_{false};
};

// Where quern-slot is by default: next to this process's executable.
std::filesystem::path default_slot_program();

}  // namespace quern::slot
