// The metrics of the workers of one group in this process (a `quern worker`
// has one group, `quern up` one per configured group, `quern agent` one):
//
//   quern_jobs_completed_total{group,tag,outcome}  completions the queue accepted
//                                                  (outcome: success, failure, timeout, canceled)
//   quern_job_duration_seconds{group,tag}          claim to completion of those jobs
//   quern_job_queue_wait_seconds{group,tag}        due → started, per claimed job
//   quern_job_retries_total{group}                 completions that re-queued the job (retry policy)
//   quern_jobs_handed_back_total{group}            running jobs given back to the queue at shutdown
//   quern_worker_claims_total{group}               claim statements run
//   quern_worker_jobs_claimed_total{group}
//   quern_worker_claim_duration_seconds{group}     one claim statement, round trip
//   quern_worker_slots{group,state}                slots busy / idle now
//   quern_worker_occupancy_ratio{group,window}     busy slot-time / slot-time over 15s, 5m, 30m
//   quern_worker_heartbeat_age_seconds{group}      since the last successful heartbeat round
//   quern_lease_recoveries_total{outcome}          (count_recoveries; servers count them too)
//
// `tag` goes through a LabelLimit (at most 256 values per process, then
// "_other"); no label carries a job id or a script path.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "host/metrics/metrics.h"

namespace quern::metrics {

// Busy slot-time over trailing windows, from the moments the busy count or
// the slot count changes. Thread-safe.
class Occupancy {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Occupancy(Clock::time_point now = Clock::now());
  // From `now` on, `busy` of `slots` slots are busy.
  void set(int busy, int slots, Clock::time_point now = Clock::now());
  // Busy slot-seconds / slot-seconds over the last `window` (or since the
  // start, when shorter); 0 with no slots.
  double ratio(std::chrono::seconds window, Clock::time_point now = Clock::now());

 private:
  struct Second {
    int64_t index = 0;  // whole seconds since start_
    double busy = 0, capacity = 0;
  };
  void advance(Clock::time_point now);  // mu_ held

  std::mutex mu_;
  const Clock::time_point start_;
  Clock::time_point last_;
  int busy_ = 0, slots_ = 0;
  std::deque<Second> seconds_;  // the last kKeep seconds that had any slot-time, oldest first
};

class WorkerMetrics {
 public:
  WorkerMetrics(Metrics& m, std::string group);

  void claimed(int jobs, std::chrono::duration<double> took);
  void job_started(const std::string& tag, std::chrono::duration<double> queue_wait);
  void job_finished(const std::string& tag, const std::string& outcome, std::chrono::duration<double> took);
  void retried(int jobs);
  void handed_back(int jobs);
  void slots(int busy, int total);
  void heartbeat_ok();
  // Leases of lost workers this worker's sweep recovered (count_recoveries).
  void recovered(int requeued, int failed, int canceled);

 private:
  // What the scrape-time refresh reads; shared with it, so that a scrape
  // after this object is gone still finds it.
  struct Live {
    Occupancy occupancy;
    std::mutex mu;
    Occupancy::Clock::time_point last_heartbeat;  // guarded by mu
    bool heartbeat_seen = false;                  // guarded by mu
  };
  Metrics& m_;
  const std::string group_;
  LabelLimit tags_{256};
  std::shared_ptr<Live> live_;
  prometheus::Counter& claims_;
  prometheus::Counter& jobs_claimed_;
  prometheus::Histogram& claim_seconds_;
  prometheus::Counter& retries_;
  prometheus::Counter& handed_back_;
  prometheus::Gauge& busy_;
  prometheus::Gauge& idle_;
  prometheus::Family<prometheus::Counter>& completed_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Family<prometheus::Histogram>& waits_;
};

// quern_lease_recoveries_total{outcome="requeued"|"failed"|"canceled"}:
// leases of lost workers this process recovered (servers and workers both
// sweep; each recovery is counted once, by whoever did it).
void count_recoveries(Metrics& m, int requeued, int failed, int canceled);

}  // namespace quern::metrics
