#include "host/worker/worker.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "host/common/validation.h"
#include "host/queue/migrations.h"
#include "host/slot/slot_process.h"
#include "host/worker/delivery.h"
#include "host/worker/job_confinement.h"
#include "host/worker/job_run.h"
#include "host/worker/worker_loops.h"
#include "host/worker/worker_state.h"
#include "quern/sandbox.h"

namespace quern::worker {
namespace {

std::string default_worker_id() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::random_device rd;
  char suffix[9];
  snprintf(suffix, sizeof(suffix), "%08x", rd());
  return std::string(host) + "-" + std::to_string(getpid()) + "-" + suffix;
}

}  // namespace

std::string dedicated_tag(const std::string& script_path) { return "dedicated:" + script_path; }

std::filesystem::path default_jobs_dir(const std::string& worker_id) {
  // One folder per worker: job ids are only unique within one database, and
  // workers of several clusters (or test databases) may share a machine.
  std::string safe = worker_id;
  for (char& c : safe)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  return std::filesystem::temp_directory_path() / "quern-jobs" / safe;
}

int clean_up_after(const std::string& worker_id) {
  // A worker that stopped cleanly removed its jobs directory, and each job's
  // cgroup went with its job: nothing to make here only to remove it again.
  const std::filesystem::path jobs_dir = default_jobs_dir(worker_id);
  if (std::error_code ec; !std::filesystem::exists(jobs_dir, ec)) return 0;
  // The jobs directory's lock is the worker's life: taken, the worker is gone.
  JobsDir dir;
  if (!dir.acquire(jobs_dir, worker_id)) return 0;
  int ended = 0;
  if (auto tree = cgroup::Tree::open(worker_id, {}); tree) ended = (*tree)->reap();
  dir.release(/*remove=*/true);
  return ended;
}

std::map<std::string, std::string> minimal_job_environment(const std::filesystem::path& workdir,
                                                           int64_t job_id, int32_t attempt) {
  return {
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
      {"HOME", workdir.string()},
      {"TMPDIR", workdir.string()},
      {"LANG", "C.UTF-8"},
      {"QUERN_JOB_ID", std::to_string(job_id)},
      {"QUERN_ATTEMPT", std::to_string(attempt)},
  };
}

Worker::Worker(WorkerOptions options, const plugin::PluginRegistry& plugins)
    : options_(std::move(options)), plugins_(plugins), state_(std::make_unique<State>()) {
  if (options_.worker_id.empty()) options_.worker_id = default_worker_id();
  if (options_.jobs_dir.empty()) {
    options_.jobs_dir = default_jobs_dir(options_.worker_id);
    owns_jobs_dir_ = true;
  }
}

Worker::~Worker() {
  stop();
  wait();
}

WorkerStats Worker::stats() const {
  WorkerStats s;
  s.claimed = state_->claimed.load();
  s.completed = state_->completed.load();
  s.completions_refused = state_->refused.load();
  s.claim_queries = state_->claim_queries.load();
  std::lock_guard lock(state_->mu);
  s.running = state_->busy;
  return s;
}

Status Worker::ready() const {
  if (!state_->started.load()) return Status::unavailable("the worker has not started");
  if (!state_->source_ok.load()) return Status::unavailable(state_->source_error());
  std::lock_guard lock(state_->mu);
  if (state_->stopping) return Status::unavailable("the worker is stopping");
  return Status::ok();
}

void Worker::stop() {
  std::lock_guard lock(state_->mu);
  if (state_->stopping) return;
  state_->stopping = true;
  state_->stop_requested_at = SteadyClock::now();
  state_->slots_cv.notify_all();
  state_->claimer_cv.notify_all();
  state_->writer_cv.notify_all();
  state_->watchdog_cv.notify_all();
  if (state_->claim_source) state_->claim_source->interrupt();  // it may be waiting for a NOTIFY
}

void Worker::wait() {
  for (auto& t : state_->threads)
    if (t.joinable()) t.join();
  state_->threads.clear();
  state_->jobs_dir.release(/*remove=*/owns_jobs_dir_);
}

namespace detail {

void Loops::claimer() {
  JobSource& q = *st.claim_source;
  auto last_claim = SteadyClock::now() - opt.poll_interval;
  bool should_claim = true;  // claim at once on start
  bool backlog = false;      // the last claim was full: more jobs are waiting
  milliseconds retry_delay = kDatabaseRetry;
  std::vector<std::string> tags = opt.tags;  // replaced when set_tags() moves st.tags_version
  uint64_t tags_version = 0;
  // GPU jobs are claimed only while this worker has their devices free (the
  // plugin assigns the actual devices; docs/GPU.md). The devices never
  // change; free_gpus is refreshed under the lock before each claim.
  queue::ClaimCapacity capacity;
  capacity.device_memory_mb = opt.gpu_devices_mb;
  while (true) {
    int free_slots;
    bool retag = false;
    {
      std::unique_lock lock(st.mu);
      const auto slot_free = [&] { return st.stopping || st.busy < st.slot_limit; };
      // Every slot busy: a source that pushes cancellations is waited on, so
      // that they keep arriving; finish() interrupts that wait.
      if (st.cancels_on_claimer)
        hear_cancels_until(lock, q, slot_free);
      else
        st.claimer_cv.wait(lock, slot_free);
      const int min_batch = std::max(1, st.slot_limit / 4);
      // With a backlog, a few claimers taking many rows each beat many small
      // claims (docs/ARCHITECTURE.md §3): let a quarter of the slots free up, for
      // at most kBacklogBatchWait. An idle worker never waits here.
      // Only for short jobs: when jobs run long, claims are rare anyway and
      // the wait would only leave slots idle.
      if (backlog && st.slot_limit - st.busy < min_batch && st.exec_ewma_us.load() < kShortJobUs)
        st.claimer_cv.wait_for(lock, kBacklogBatchWait,
                               [&] { return st.stopping || st.slot_limit - st.busy >= min_batch; });
      if (st.stopping) break;
      free_slots = st.slot_limit - st.busy;  // <= 0 only if set_slots() lowered the limit just now
      if (st.tags_version != tags_version) {
        tags = st.tags;
        tags_version = st.tags_version;
        retag = true;
      }
      capacity.free_gpus = static_cast<int>(opt.gpu_devices_mb.size()) - st.gpus_in_use;
    }
    if (retag) {
      // Notifications for the old tags stop, for the new ones start; claim
      // at once in case jobs of a new tag are already waiting.
      if (Status s = q.relisten(tags); !s)
        log::warning("worker", "listening on the new tags: " + s.message(), log_fields());
      should_claim = true;
    }
    if (free_slots <= 0) continue;
    // Idle (the last claim was short): wait for a wake-up, the next poll, or
    // the moment the source says a job becomes due (a delay, a backoff, a
    // rate window), whichever comes first. A long-polling source polls on
    // the server's side: its waits follow one another with no claim() in
    // between. A backlog claims at once and pays for none of this.
    if (!should_claim) {
      const auto now = SteadyClock::now();
      auto wake_at = q.claims_while_waiting() ? now + q.max_wait_slice() : last_claim + opt.poll_interval;
      if (auto due = q.next_due(); due && *due < wake_at) wake_at = *due;
      if (now < wake_at) {
        const auto left = std::max(milliseconds(1), std::chrono::ceil<milliseconds>(wake_at - now));
        auto woke =
            q.wait_for_jobs(std::min(left, q.max_wait_slice()), opt.worker_id, tags, free_slots, capacity);
        if (!woke) {
          log::warning("worker", "waiting for notifications: " + woke.message(), log_fields());
          std::unique_lock lock(st.mu);
          st.claimer_cv.wait_for(lock, kDatabaseRetry, [&] { return st.stopping; });
          should_claim = true;  // re-LISTEN happens on reconnect; poll meanwhile
          continue;
        }
        should_claim = *woke;
        take_cancels(q);
        continue;
      }
    }
    last_claim = SteadyClock::now();
    st.claim_queries++;
    auto claimed = q.claim(opt.worker_id, tags, free_slots, capacity);
    if (opt.metrics)
      opt.metrics->claimed(claimed ? static_cast<int>(claimed->size()) : 0, SteadyClock::now() - last_claim);
    if (!claimed) {
      // Exponential backoff while the database (or the server, for agents) is away.
      log::warning(
          "worker",
          "claim failed (retrying in " + std::to_string(retry_delay.count()) + " ms): " + claimed.message(),
          log_fields());
      std::unique_lock lock(st.mu);
      st.claimer_cv.wait_for(lock, retry_delay, [&] { return st.stopping; });
      retry_delay = std::min(retry_delay * 2, kMaxRetryDelay);
      should_claim = true;
      continue;
    }
    retry_delay = kDatabaseRetry;
    // Cancellations that arrived during the claim: a claimer with a backlog
    // may not wait again for a while.
    take_cancels(q);
    // A full batch means more may be waiting: claim again as soon as a slot
    // frees up. A short batch means the queue is drained for our tags: wait
    // for a notification or the next poll.
    should_claim = static_cast<int>(claimed->size()) == free_slots;
    backlog = should_claim;
    if (claimed->empty()) continue;
    st.claimed += static_cast<int64_t>(claimed->size());
    std::lock_guard lock(st.mu);
    if (st.running.empty()) {  // the watchdog and the writer tick only while jobs run
      st.watchdog_cv.notify_all();
      st.writer_cv.notify_all();
    }
    for (auto& job : *claimed) {
      int timeout_s = job.timeout_s > 0 ? job.timeout_s : opt.default_timeout_s;
      auto run =
          std::make_shared<JobRun>(std::move(job), SteadyClock::now() + std::chrono::seconds(timeout_s));
      st.running.emplace(run->job().id, run);
      st.gpus_in_use += run->job().gpus;
      if (opt.metrics) opt.metrics->job_started(run->job().tag, run->job().started_at - run->job().due_at);
      st.dispatch.push_back(std::move(run));
      st.busy++;
      st.slots_cv.notify_one();  // one slot per job: no thundering herd of idle slots
    }
    st.slots_changed(opt.metrics);
  }
  // Wake-ups for this worker's tags go to other claimers from now on.
  if (Status s = q.stop_waiting(opt.worker_id); !s)
    log::warning("worker", "leaving the waiting claimers: " + s.message(), log_fields());
  // Claimed jobs that no slot started go straight back to the queue.
  std::unique_lock lock(st.mu);
  while (!st.dispatch.empty()) {
    auto run = std::move(st.dispatch.front());
    st.dispatch.pop_front();
    st.pending_releases.push_back({run->job().id, run->job().attempt});
    st.running.erase(run->job().id);
    st.gpus_in_use -= run->job().gpus;
    st.busy--;
    if (opt.metrics) opt.metrics->handed_back(1);
  }
  st.slots_changed(opt.metrics);
  st.claimer_done = true;
  st.slots_cv.notify_all();
  st.writer_cv.notify_all();
  // Jobs may run on through the stop's grace period: go on hearing of their
  // cancellations until the writer is done (it interrupts this wait).
  if (st.cancels_on_claimer) hear_cancels_until(lock, q, [&] { return st.writer_done; });
}

void Loops::hear_cancels_until(std::unique_lock<std::mutex>& lock, JobSource& q,
                               const std::function<bool()>& done) {
  while (!done()) {
    lock.unlock();
    auto waited = q.wait_for_jobs(q.max_wait_slice(), opt.worker_id, {}, 0, {});
    if (waited) take_cancels(q);
    lock.lock();
    // The database is away: do not spin; heartbeats deliver cancels meanwhile.
    if (!waited) st.claimer_cv.wait_for(lock, kDatabaseRetry, done);
  }
}

void Loops::finish(const std::shared_ptr<JobRun>& run, std::optional<queue::Completion> completion,
                   bool release) {
  std::string logs = run->take_logs();
  std::lock_guard lock(st.mu);
  if (!logs.empty()) st.pending_logs.push_back({run->job().id, run->job().attempt, std::move(logs)});
  if (opt.metrics) {
    if (completion)
      st.finished[{run->job().id, run->job().attempt}] = {run->job().tag, completion->status,
                                                          SteadyClock::now() - run->claimed_at};
    if (release) opt.metrics->handed_back(1);
  }
  if (completion) st.pending_completions.push_back(std::move(*completion));
  if (release) st.pending_releases.push_back({run->job().id, run->job().attempt});
  st.running.erase(run->job().id);
  st.gpus_in_use -= run->job().gpus;
  st.busy--;
  st.slots_changed(opt.metrics);
  st.writer_cv.notify_one();   // the writer is one thread
  st.claimer_cv.notify_one();  // so is the claimer
  // A busy claimer that hears cancellations waits on its source (hear_cancels_until).
  if (st.cancels_on_claimer && st.busy == st.slot_limit - 1) st.claim_source->interrupt();
}

void Loops::count_completions(const std::vector<queue::Lease>& sent,
                              const std::vector<queue::Completion>& left,
                              const std::vector<int64_t>& accepted, const std::vector<int64_t>& retried) {
  // Sorted copies: a batch holds up to hundreds of completions, and this
  // runs on the writer thread between deliveries.
  const auto sorted = [](std::vector<int64_t> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  std::vector<int64_t> pending;
  for (const auto& c : left) pending.push_back(c.id);
  pending = sorted(std::move(pending));
  const std::vector<int64_t> ok = sorted(accepted), again = sorted(retried);
  const auto in = [](const std::vector<int64_t>& v, int64_t id) {
    return std::binary_search(v.begin(), v.end(), id);
  };
  std::lock_guard lock(st.mu);
  // The queue answers by id. Attempts of a job are counted apart, unless two
  // travel in one batch (a lost lease, the job claimed here again): then
  // both take that answer.
  for (const auto& [id, attempt] : sent) {
    if (in(pending, id)) continue;  // to be sent again
    auto it = st.finished.find({id, attempt});
    if (it == st.finished.end()) continue;
    if (in(again, id)) {
      opt.metrics->retried(1);
    } else if (in(ok, id)) {
      opt.metrics->job_finished(it->second.tag, queue::to_string(it->second.status), it->second.took);
    }  // else refused as stale or dropped: not this worker's completion
    st.finished.erase(it);
  }
}

void Loops::writer() {
  JobSource& q = *st.writer_source;
  const milliseconds recovery_interval = std::max(milliseconds(200), opt.lease_timeout / 4);
  auto next_heartbeat = SteadyClock::now() + opt.heartbeat_interval;
  auto next_recovery = SteadyClock::now();
  auto next_log_flush = SteadyClock::now() + kLogFlushInterval;
  std::vector<queue::LogChunk> logs;
  std::vector<queue::Completion> completions;
  std::vector<queue::Lease> releases;
  std::optional<queue::WorkerInfo> registry_update;  // a reconfiguration not yet written
  // Jobs with a log chunk the source refused for good: failed at completion.
  std::map<int64_t, std::string> poisoned;
  size_t dropped = 0;  // completions isolated and not stored, in the current delivery
  const OnIsolated isolated = [&](int64_t id, Isolated what, const std::string& why) {
    log::error("worker", why, log_fields(id));
    if (what == Isolated::log_chunk) poisoned.emplace(id, why);
    if (what == Isolated::completion_dropped) ++dropped;
  };
  bool retry_wait = false;
  SteadyClock::time_point stop_requested_at{};  // copied under the lock
  while (true) {
    bool all_done;
    {
      std::unique_lock lock(st.mu);
      // Logs are flushed on a tick only while jobs run: an idle worker wakes
      // for its heartbeat and lease sweeps alone (the claimer wakes it when
      // jobs start).
      const bool idle = st.running.empty();
      auto wake = next_heartbeat;
      if (opt.recover_expired_leases) wake = std::min(wake, next_recovery);  // agents never sweep
      if (!idle) wake = std::min(wake, next_log_flush);
      if (retry_wait) wake = std::min(wake, SteadyClock::now() + kDatabaseRetry);
      st.writer_cv.wait_until(lock, wake, [&] {
        return !retry_wait && (!st.pending_completions.empty() || !st.pending_releases.empty() ||
                               st.log_flush_wanted || st.registry_update ||
                               (st.claimer_done && st.slots_alive == 0) || (idle && !st.running.empty()));
      });
      if (idle && !st.running.empty()) next_log_flush = SteadyClock::now() + kLogFlushInterval;
      retry_wait = false;
      const auto now = SteadyClock::now();
      if (now >= next_log_flush || st.log_flush_wanted) {
        for (auto& [id, run] : st.running) {
          std::string text = run->take_logs();
          if (!text.empty()) logs.push_back({id, run->job().attempt, std::move(text)});
        }
        next_log_flush = now + kLogFlushInterval;
        st.log_flush_wanted = false;
      }
      // Final chunks go after the running ones of the same job, and before
      // the job's completion.
      for (auto& c : st.pending_logs) logs.push_back(std::move(c));
      st.pending_logs.clear();
      for (auto& c : st.pending_completions) completions.push_back(std::move(c));
      st.pending_completions.clear();
      for (auto& r : st.pending_releases) releases.push_back(r);
      st.pending_releases.clear();
      all_done = st.claimer_done && st.slots_alive == 0;
      stop_requested_at = st.stop_requested_at;
      if (st.registry_update)
        registry_update = std::exchange(st.registry_update, std::nullopt);  // the newest wins
    }
    if (registry_update) {
      if (Status s = q.register_worker(*registry_update); s) {
        registry_update.reset();
      } else {
        log::warning("worker", "updating the worker registry failed (will retry): " + s.message(),
                     log_fields());
        retry_wait = true;
      }
    }
    if (!logs.empty() || !completions.empty()) {
      const size_t sent = completions.size();
      std::vector<int64_t> accepted, retried;
      dropped = 0;
      std::vector<queue::Lease> sent_ids;  // only for metrics
      if (opt.metrics)
        for (const auto& c : completions) sent_ids.push_back({c.id, c.attempt});
      Status s = deliver_outputs(q, opt.worker_id, logs, completions, poisoned, accepted, retried, isolated);
      if (opt.metrics && sent > 0) count_completions(sent_ids, completions, accepted, retried);
      st.completed += static_cast<int64_t>(accepted.size());
      const size_t handled = sent - completions.size();
      if (size_t stale = handled - std::min(handled, accepted.size() + dropped); stale > 0) {
        st.refused += static_cast<int64_t>(stale);
        log::warning("worker",
                     std::to_string(stale) +
                         " completion(s) refused: lease lost (the job was re-queued or finished elsewhere)",
                     log_fields());
      }
      if (!s) {
        log::warning("worker", "writing logs and results failed (will retry): " + s.message(), log_fields());
        retry_wait = true;
      }
    }
    if (!releases.empty()) {
      if (Status s = q.release(opt.worker_id, releases); s) {
        releases.clear();
      } else {
        log::warning("worker", "handing jobs back failed (will retry): " + s.message(), log_fields());
        retry_wait = true;
      }
    }
    const auto now = SteadyClock::now();
    if (now >= next_heartbeat) {
      heartbeat(q);
      next_heartbeat = now + opt.heartbeat_interval;
    }
    if (opt.recover_expired_leases && now >= next_recovery) {
      auto report = q.recover_expired(opt.lease_timeout);
      if (!report) log::warning("worker", "lease recovery failed: " + report.message(), log_fields());
      if (report && opt.metrics) opt.metrics->recovered(report->requeued, report->failed, report->canceled);
      next_recovery = now + recovery_interval;
    }
    if (all_done && logs.empty() && completions.empty() && releases.empty()) break;
    if (all_done && retry_wait &&
        SteadyClock::now() - stop_requested_at > opt.shutdown_grace + std::chrono::seconds(30)) {
      log::error("worker", "giving up on unwritten results: their leases will expire and they will re-run",
                 log_fields());
      break;
    }
  }
  if (Status s = q.unregister_worker(opt.worker_id); !s)
    log::warning("worker", "leaving the worker registry failed: " + s.message(), log_fields());
  std::lock_guard lock(st.mu);
  st.writer_done = true;
  st.watchdog_cv.notify_all();
  st.claimer_cv.notify_all();
  if (st.cancels_on_claimer) st.claim_source->interrupt();  // its wait for cancellations ends now
}

void Loops::watchdog() {
  std::unique_lock lock(st.mu);
  while (!st.writer_done) {
    // Ticks only while there is something to watch: jobs, or a shutdown's
    // grace period. Otherwise the claimer (jobs), stop() and the writer
    // (done) wake it.
    if (st.running.empty() && !st.stopping)
      st.watchdog_cv.wait(lock);
    else
      st.watchdog_cv.wait_for(lock, kWatchdogTick);
    const auto now = SteadyClock::now();
    const bool shutdown_due = st.stopping && now - st.stop_requested_at >= opt.shutdown_grace;
    bool want_flush = false;
    for (auto& [id, run] : st.running) {
      if (shutdown_due) stop_job(*run, QUERN_SHUTDOWN);
      if (now >= run->deadline()) stop_job(*run, QUERN_TIMEOUT_REACHED);
      if (run->stop_reason() != QUERN_RUNNING && !run->term_sent) {
        run->term_sent = true;
        run->term_at = now;
        if (run->sandboxed_cgroup != nullptr)
          run->sandboxed_cgroup->signal(SIGTERM, "bwrap");
        else if (int64_t pgid = run->process_group(); pgid > 0)
          kill(static_cast<pid_t>(-pgid), SIGTERM);
        if (run->executor) run->executor->stop(run->stop_reason());
      } else if (run->term_sent && !run->kill_sent && now - run->term_at >= opt.kill_grace) {
        run->kill_sent = true;
        if (int64_t pgid = run->process_group(); pgid > 0) kill(static_cast<pid_t>(-pgid), SIGKILL);
        if (run->executor) run->executor->kill();  // a slot process that ignores the stop
      }
      if (run->pending_log_bytes() >= kLogFlushBytes) want_flush = true;
    }
    if (want_flush) {
      st.log_flush_wanted = true;
      st.writer_cv.notify_all();
    }
  }
}

bool Loops::stop_job(JobRun& run, int32_t reason) {
  if (!run.request_stop(reason)) return false;
  if (opt.on_stop_requested) opt.on_stop_requested(run.job().id, reason);
  return true;
}

}  // namespace detail

using detail::Loops;

namespace {

// A worker runs against the schema it was built for. One older (or none) is
// waited for: a server, or `quern migrate`, brings it up. One newer is
// refused: a migration may change what the worker's statements rely on
// (docs/DEPLOY.md, upgrades).
Status check_schema(JobSource& source, const std::string& version) {
  auto found = source.schema_version();
  if (!found) return found.status();
  const int need = queue::latest_schema_version();
  if (*found < 0 || *found == need) return Status::ok();  // < 0: through a server, which owns the schema
  const std::string needs = "this worker needs schema version " + std::to_string(need);
  const std::string fix =
      ": run `quern migrate` against this database (or start `quern server`, which migrates at start)";
  if (*found == 0) return Status::not_found("the database has no Quern schema; " + needs + fix);
  if (*found < need)
    return Status::not_found("the database's Quern schema is version " + std::to_string(*found) + "; " +
                             needs + fix);
  return Status::conflict("the database's Quern schema is version " + std::to_string(*found) +
                          ", newer than this worker's " + std::to_string(need) + " (Quern " +
                          (version.empty() ? std::string("?") : version) +
                          "): upgrade this worker to the version of the server that migrated it");
}

}  // namespace

Status Worker::start() {
  add_dedicated_tags(options_.tags, options_.dedicated_scripts);
  if (options_.tags.empty()) return Status::error("worker " + options_.worker_id + ": no tags to serve");
  for (const std::string& tag : options_.tags)
    if (Status st = validation::check_tag(tag, "tags"); !st)
      return st.with_context("worker " + options_.worker_id);
  if (options_.slots < 1) return Status::error("worker " + options_.worker_id + ": slots must be at least 1");
  if (Status s = sandbox::resolve_job_user(options_.sandbox); !s)
    return s.with_context("worker " + options_.worker_id);
  if (Status s = sandbox::probe(options_.sandbox); !s) return s.with_context("worker " + options_.worker_id);
  if (Status s = state_->jobs_dir.acquire(options_.jobs_dir, options_.worker_id); !s) return s;
  state_->cgroups.reset();  // start() again after a failed one: the old tree's directories are these
  auto cgroups = cgroup::Tree::open(options_.worker_id, options_.sandbox.limits);
  if (!cgroups) return cgroups.status().with_context("worker " + options_.worker_id);
  if ((*cgroups)->describe() != "none") state_->cgroups = std::move(cgroups).value();
  // What a killed predecessor of this id left running is ended now.
  if (int n = state_->cgroups ? state_->cgroups->reap() : 0; n > 0)
    log::warning("worker", "ended " + std::to_string(n) + " job cgroup(s) a previous worker left",
                 {.worker = options_.worker_id});
  state_->setup_items = sandbox::setup_items(options_.sandbox);
  queue::QueueOptions qo;
  qo.default_max_restarts = options_.max_restarts;
  qo.application_name = "quern " + options_.kind + " " + options_.group;
  queue::QueueOptions claim_qo = qo;
  claim_qo.relaxed_commit = true;  // a claim lost in a crash only means the job is claimed again
  auto make_source = [&](const queue::QueueOptions& o) -> StatusOr<std::unique_ptr<JobSource>> {
    if (options_.source_factory) return options_.source_factory();
    return PgJobSource::connect(options_.database_url, o);
  };
  auto cq = make_source(claim_qo);
  if (!cq) return cq.status().with_context("worker " + options_.worker_id);
  if (Status s = check_schema(**cq, options_.version); !s)
    return s.with_context("worker " + options_.worker_id);
  auto wq = make_source(qo);
  if (!wq) return wq.status().with_context("worker " + options_.worker_id);
  auto listening = (*cq)->listen_cancels();
  if (!listening) return listening.status().with_context("worker " + options_.worker_id);
  if (Status s = (*cq)->listen(options_.tags); !s) return s.with_context("worker " + options_.worker_id);
  if (Status s = (*cq)->listen_for_wakeups(options_.worker_id); !s)
    return s.with_context("worker " + options_.worker_id);
  queue::WorkerInfo info;
  info.id = options_.worker_id;
  info.kind = options_.kind;
  info.group = options_.group;
  info.tags = options_.tags;
  info.slots = options_.slots;
  info.version = options_.version;
  info.isolation = sandbox::describe(options_.sandbox) +
                   (state_->cgroups ? ", " + state_->cgroups->describe() : std::string(", no cgroups"));
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  info.hostname = host;
  info.pid = getpid();
  for (const auto& p : plugins_.plugins()) state_->plugin_health[p->info().name] = "unchecked";
  if (Status s = (*wq)->register_worker(info); !s)
    log::warning("worker", "joining the worker registry failed (jobs still run): " + s.message(),
                 {.worker = options_.worker_id});
  state_->claim_source = std::move(cq).value();
  state_->writer_source = std::move(wq).value();
  state_->cancels_on_claimer = *listening;
  state_->registry_info = info;
  state_->tags = options_.tags;
  state_->slot_limit = state_->slot_threads = options_.slots;
  for (const auto& name : options_.pass_env)
    if (const char* value = std::getenv(name.c_str())) state_->passed_env[name] = value;
  if (options_.sandbox.mode != sandbox::Mode::none)  // the SDK's spawn applies it (quern/sandbox.h)
    state_->passed_env[QUERN_SANDBOX_ENV] = sandbox::encode(sandbox::wrapper(options_.sandbox));

  auto loops = std::make_shared<Loops>(options_, plugins_, *state_);
  state_->start_slot = [loops, st = state_.get()] { st->threads.emplace_back([loops] { loops->slot(); }); };
  state_->slots_alive = options_.slots;
  state_->threads.emplace_back([loops] { loops->writer(); });
  state_->threads.emplace_back([loops] { loops->watchdog(); });
  for (int i = 0; i < options_.slots; ++i) state_->start_slot();
  state_->threads.emplace_back([loops] { loops->claimer(); });
  {
    std::lock_guard lock(state_->mu);
    state_->slots_changed(options_.metrics);
  }
  state_->started.store(true);
  return Status::ok();
}

}  // namespace quern::worker
