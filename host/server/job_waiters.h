// Wakes run_wait_result requests when their job finishes, without polling:
// such jobs are pushed with notify_done, the statement that finishes one
// NOTIFYs queue::kJobDoneChannel with its id, and one listener thread per
// server hands each id to the request waiting for it.
//
// Contract for a waiter: watch(id) BEFORE checking the job's state, then
// wait(). A notification that arrived before watch() is lost, but then the
// check after watch() already sees the job finished (the NOTIFY is sent at
// the commit that finished it). wait() also returns after its timeout, so a
// missed or undelivered notification (listener reconnecting) costs at most
// one timeout, never a hang.
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
#include <string>
#include <thread>

namespace quern::server {

class JobWaiters {
 public:
  struct Waiter;  // internal

  // A registration; unregisters when destroyed.
  class Watch {
   public:
    Watch(JobWaiters& owner, int64_t id, std::shared_ptr<Waiter> w);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    // Until the job's notification arrives (true) or timeout (false).
    bool wait(std::chrono::milliseconds timeout);

   private:
    JobWaiters& owner_;
    int64_t id_;
    std::shared_ptr<Waiter> waiter_;
  };

  explicit JobWaiters(std::string database_url);
  ~JobWaiters();  // stops and joins the listener
  JobWaiters(const JobWaiters&) = delete;
  JobWaiters& operator=(const JobWaiters&) = delete;

  std::unique_ptr<Watch> watch(int64_t job_id);
  // Whether the listener is connected and LISTENing (else waiters should poll).
  bool listening() const { return listening_.load(); }

 private:
  void run();
  void unwatch(int64_t id);

  const std::string url_;
  std::mutex mu_;
  std::map<int64_t, std::shared_ptr<Waiter>> waiters_;  // guarded by mu_
  std::condition_variable stop_cv_;                     // with mu_
  bool stopping_ = false;                               // guarded by mu_
  std::atomic<bool> listening_{false};
  std::thread thread_;  // last: started after everything above exists
};

}  // namespace quern::server
