// Wakes run_wait_result requests when their job finishes, without polling
// and usually without reading the job back: such a job is pushed with a
// waiter token, the statement that finishes it NOTIFYs
// queue::kJobDoneChannel with {"w": token, "id", and when it fits "status",
// "result", "error"}, and one listener thread per server hands each payload
// to the request waiting under that token.
//
// Contract for a waiter: watch() a fresh token BEFORE pushing the job, so no
// notification can come first. wait() also returns after its timeout, so a
// notification lost while the listener reconnects costs at most one
// timeout (then read the job), never a hang.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace quern::server {

class JobWaiters {
 public:
  struct Waiter;  // internal

  // A registration; unregisters when destroyed.
  class Watch {
   public:
    Watch(JobWaiters& owner, std::string token, std::shared_ptr<Waiter> w);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    const std::string& token() const { return token_; }
    // The notification's payload (the JSON text described above), or
    // nullopt when none arrived within timeout.
    std::optional<std::string> wait(std::chrono::milliseconds timeout);

   private:
    JobWaiters& owner_;
    std::string token_;
    std::shared_ptr<Waiter> waiter_;
  };

  explicit JobWaiters(std::string database_url);  // the listener starts with the first watch()
  ~JobWaiters();                                  // stops and joins the listener
  JobWaiters(const JobWaiters&) = delete;
  JobWaiters& operator=(const JobWaiters&) = delete;

  // Registers a new unique token (random, 128 bits) to push a job with.
  std::unique_ptr<Watch> watch();
  // Whether the listener is connected and LISTENing (else waiters should poll).
  bool listening() const { return listening_.load(); }

 private:
  void run();
  void unwatch(const std::string& token);

  const std::string url_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Waiter>> waiters_;  // by token; guarded by mu_
  std::condition_variable stop_cv_;                         // with mu_
  bool stopping_ = false;                                   // guarded by mu_
  std::atomic<bool> listening_{false};
  std::thread thread_;  // the listener, started by the first watch(); guarded by mu_ until joined
};

}  // namespace quern::server
