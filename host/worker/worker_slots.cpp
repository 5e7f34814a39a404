// The slots of a worker (worker_loops.h): each takes claimed jobs one at a
// time and runs them through an executor instance of its own per plugin —
// working directory, confinement (job_confinement.h), a dedicated script's
// warm process, the plugin's execute(), and what is left to kill after it.
#include <signal.h>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "host/slot/slot_process.h"
#include "host/worker/job_confinement.h"
#include "host/worker/worker_loops.h"
#include "quern/sandbox.h"

namespace quern::worker::detail {

void Loops::slot() {
  // One executor instance per plugin per slot: plugins never see concurrent
  // execute() calls on one instance.
  SlotExecutors executors;
  executors.id = slot_ids.fetch_add(1);
  while (true) {
    std::shared_ptr<JobRun> run;
    {
      std::unique_lock lock(st.mu);
      const bool woken =
          st.slots_cv.wait_for(lock, kHealthEvery, [&] { return !st.dispatch.empty() || st.claimer_done; });
      if (woken && st.dispatch.empty()) break;  // the claimer is done
      if (woken) {
        run = std::move(st.dispatch.front());
        st.dispatch.pop_front();
      }
    }
    if (run) run_job(run, executors);
    check_health(executors);
  }
  executors.instances.clear();
  std::lock_guard lock(st.mu);
  st.slots_alive--;
  st.writer_cv.notify_all();
}

void Loops::check_health(SlotExecutors& slot) {
  const auto now = SteadyClock::now();
  for (auto& [name, executor] : slot.instances) {
    auto& last = slot.health_checked[name];
    if (last != SteadyClock::time_point{} && now - last < kHealthEvery) continue;
    last = now;
    const Status h = executor->health();
    std::lock_guard lock(st.mu);
    st.plugin_health[name] = h ? std::string("ok") : h.message();
  }
}

StatusOr<std::unique_ptr<slot::JobExecutor>> Loops::make_executor(const plugin::LoadedPlugin& p) {
  auto cfg = opt.plugin_configs.find(p.info().name);
  const std::string config = cfg == opt.plugin_configs.end() ? "{}" : cfg->second;
  if (std::find(opt.in_process_plugins.begin(), opt.in_process_plugins.end(), p.info().name) !=
      opt.in_process_plugins.end()) {
    auto created = p.create(config);
    if (!created) return created.status();
    return std::unique_ptr<slot::JobExecutor>(new slot::InProcessExecutor(std::move(created).value()));
  }
  auto started = slot::SlotProcess::start(
      opt.slot_program.empty() ? slot::default_slot_program() : opt.slot_program, p, config);
  if (!started) return started.status();
  return std::unique_ptr<slot::JobExecutor>(std::move(started).value());
}

// A dedicated worker keeps the plugin warm for the script's version the job
// carries: the first job of a version (after start or a redeploy) prepares
// it, on this slot's own thread; later jobs of that version reuse it.
bool Loops::prepare_dedicated(const queue::ClaimedJob& job, const plugin::LoadedPlugin& p,
                              slot::JobExecutor& executor, SlotExecutors& slot) {
  if ((p.info().capabilities & QUERN_CAP_DEDICATED) == 0) return false;
  if (std::find(opt.dedicated_scripts.begin(), opt.dedicated_scripts.end(), job.script_path) ==
      opt.dedicated_scripts.end())
    return false;
  const std::string hash = job.payload.value("script_hash", "");
  if (hash.empty()) return false;
  if (slot.prepared_hash[p.info().name] == hash) return true;
  nlohmann::ordered_json script{{"code", job.payload.value("code", "")},
                                {"language", job.language},
                                {"hash", hash},
                                {"script_path", job.script_path}};
  // The warm process is sandboxed like a job's (quern/sandbox.h).
  if (auto it = st.passed_env.find(QUERN_SANDBOX_ENV); it != st.passed_env.end())
    script["env"] = {{QUERN_SANDBOX_ENV, it->second}};
  // Its user, rlimits, and a cgroup of its own with the script's limits
  // within the group's: it outlives jobs, so it is in no job's cgroup. A
  // version with other limits gets a new cgroup (the old process ends).
  std::string setup = st.setup_items;
  auto limits = JobConfinement::limits_for(opt.sandbox.limits, job.payload, st.cgroups.get());
  if (!limits) {
    log::warning("worker", "warming " + job.script_path + ": " + limits.message(), log_fields(job.id));
    return false;  // the job itself fails for the same reason
  }
  cgroup::Job& warm = slot.warm_cgroups[p.info().name];
  cgroup::Limits& warm_limits = slot.warm_limits[p.info().name];
  if (!warm.empty() && warm_limits != *limits) {
    warm.kill();
    warm.remove();
    warm = cgroup::Job();
  }
  if (st.cgroups && warm.empty()) {
    auto made = st.cgroups->create("warm-" + std::to_string(slot.id) + "-" + p.info().name, *limits);
    if (made) {
      warm = std::move(made).value();
      warm_limits = *limits;
    } else {
      log::warning("worker", "warming " + job.script_path + ": " + made.message(), log_fields(job.id));
    }
  }
  script["env"][QUERN_SETUP_ENV] = setup + JobConfinement::join_items(warm);
  if (Status s = executor.prepare(script.dump()); !s) {
    // Not fatal: the job runs the ordinary way, and the next one tries again.
    log::warning("worker", "warming " + job.script_path + " failed: " + s.message(), log_fields(job.id));
    slot.prepared_hash.erase(p.info().name);
    return false;
  }
  slot.prepared_hash[p.info().name] = hash;
  return true;
}

void Loops::run_job(const std::shared_ptr<JobRun>& run, SlotExecutors& slot) {
  const queue::ClaimedJob& job = run->job();
  const int timeout_s = job.timeout_s > 0 ? job.timeout_s : opt.default_timeout_s;

  const plugin::LoadedPlugin* p = plugins.for_language(job.language);
  if (p == nullptr) {
    queue::Completion c{job.id, job.attempt, queue::JobStatus::failure, nullptr,
                        "no executor plugin for language '" + job.language + "' on worker " + opt.worker_id};
    finish(run, c, false);
    return;
  }
  auto& executor = slot.instances[p->info().name];
  if (!executor) {
    auto created = make_executor(*p);
    if (!created) {
      queue::Completion c{job.id, job.attempt, queue::JobStatus::failure, nullptr,
                          "executor plugin '" + p->info().name + "' failed to start: " + created.message()};
      finish(run, c, false);
      return;
    }
    executor = std::move(created).value();
  }

  const bool runs_warm = prepare_dedicated(job, *p, *executor, slot);

  // A fresh working directory per attempt, removed afterwards — for plugins
  // that run processes; in-process executors don't pay for it.
  const bool needs_workdir = (p->info().capabilities & QUERN_CAP_SPAWNS_PROCESSES) != 0;
  // Limits confine processes: a job without any (SQL, HTTP) needs none.
  auto limits = needs_workdir ? JobConfinement::limits_for(opt.sandbox.limits, job.payload, st.cgroups.get())
                              : StatusOr<cgroup::Limits>(opt.sandbox.limits);
  if (!limits) {
    queue::Completion c{job.id, job.attempt, queue::JobStatus::failure, nullptr,
                        "cannot confine the job: " + limits.message()};
    finish(run, c, false);
    return;
  }
  std::filesystem::path workdir;
  std::error_code ec;
  if (needs_workdir) {
    workdir = opt.jobs_dir / (std::to_string(job.id) + "-" + std::to_string(job.attempt));
    if (!std::filesystem::create_directory(workdir, ec) && !ec) {  // a leftover of a crashed run
      std::filesystem::remove_all(workdir, ec);
      std::filesystem::create_directory(workdir, ec);
    }
  }
  if (ec) {
    queue::Completion c{job.id, job.attempt, queue::JobStatus::failure, nullptr,
                        "cannot create working directory " + workdir.string() + ": " + ec.message()};
    finish(run, c, false);
    return;
  }
  if (needs_workdir) std::filesystem::permissions(workdir, std::filesystem::perms::owner_all, ec);

  nlohmann::ordered_json doc = job.payload.is_object() ? job.payload : nlohmann::ordered_json::object();
  if (!doc.contains("code")) doc["code"] = "";
  if (!doc.contains("args") || !doc["args"].is_object()) doc["args"] = nlohmann::ordered_json::object();
  doc["id"] = job.id;
  doc["attempt"] = job.attempt;
  doc["language"] = job.language;
  doc["script_path"] = job.script_path;
  doc["timeout_s"] = timeout_s;
  JobConfinement confinement;
  // A job of the prepared script runs in the slot's warm process, which has a
  // cgroup of its own with the script's limits (prepare_dedicated): the job
  // gets none of its own, which nothing would join, and whatever it spawns
  // joins the warm one. What the warm process uses meanwhile is the job's.
  const cgroup::Job* warm_cgroup = nullptr;
  cgroup::Usage warm_before;
  if (auto it = slot.warm_cgroups.find(p->info().name);
      runs_warm && it != slot.warm_cgroups.end() && !it->second.empty()) {
    warm_cgroup = &it->second;
    warm_cgroup->reset_peak();
    warm_before = warm_cgroup->usage();
  }
  if (needs_workdir) {
    doc["workdir"] = workdir.string();
    doc["env"] = minimal_job_environment(workdir, job.id, job.attempt);
    for (const auto& [name, value] : st.passed_env) doc["env"][name] = value;  // the group's pass-env
    auto began = JobConfinement::begin(
        runs_warm ? nullptr : st.cgroups.get(), *limits, opt.sandbox,
        warm_cgroup ? st.setup_items + JobConfinement::join_items(*warm_cgroup) : st.setup_items,
        std::to_string(job.id) + "-" + std::to_string(job.attempt), workdir, doc["env"]);
    if (!began) {
      std::filesystem::remove_all(workdir, ec);
      queue::Completion c{job.id, job.attempt, queue::JobStatus::failure, nullptr,
                          "cannot confine the job: " + began.message()};
      finish(run, c, false);
      return;
    }
    confinement = std::move(began).value();
    // Never silently weaker: the record says so when the config turned the sandbox off.
    if (opt.sandbox.mode == sandbox::Mode::none && opt.sandbox.announce_none)
      run->log_line(QUERN_STREAM_SYSTEM,
                    "this job runs unsandboxed: worker group " + opt.group + " has sandbox=\"none\"");
  }
  const std::string job_json = doc.dump();

  {
    std::lock_guard lock(st.mu);
    run->executor = executor.get();
    if (opt.sandbox.mode != sandbox::Mode::none && !confinement.cgroup().empty())
      run->sandboxed_cgroup = &confinement.cgroup();
  }
  if (opt.on_job_start) opt.on_job_start(job);
  const auto exec_start = SteadyClock::now();
  quern_status rc = executor->execute(job_json, *run);
  const int64_t exec_us =
      std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - exec_start).count();
  const int64_t ewma = st.exec_ewma_us.load(std::memory_order_relaxed);
  st.exec_ewma_us.store(ewma + (exec_us - ewma) / 8, std::memory_order_relaxed);  // racy by design: a hint
  {
    std::lock_guard lock(st.mu);
    run->executor = nullptr;
    run->sandboxed_cgroup = nullptr;
  }
  // A slot process that died (a crash, or killed after ignoring a stop) is
  // replaced at this slot's next job of the plugin, prepared afresh.
  if (!executor->alive()) {
    slot.instances.erase(p->info().name);
    slot.prepared_hash.erase(p->info().name);
  }
  // Whatever the plugin did, nothing of the job may outlive it.
  if (int64_t pgid = run->process_group(); pgid > 0) kill(static_cast<pid_t>(-pgid), SIGKILL);
  cgroup::Usage usage = confinement.end();  // and all its cgroup held: setsid'd, double-forked
  // An OOM kill in the warm process during the job is the job's too.
  if (warm_cgroup != nullptr) usage = cgroup::used_between(warm_before, warm_cgroup->usage());
  if (run->lost()) {
    finish(run, std::nullopt, false);
  } else if (run->stop_reason() == QUERN_SHUTDOWN) {
    // The host stopped it: handed back to the queue, whatever the plugin returned.
    finish(run, std::nullopt, true);
  } else {
    queue::Completion c = run->outcome(rc, timeout_s);
    JobConfinement::account(usage, *limits, c);
    finish(run, std::move(c), false);
  }
  // After the outcome is on its way (the job's processes were killed above):
  // removing its directory is the slot's own clean-up, not part of the job's
  // time, and this slot takes its next job only once it is done.
  if (needs_workdir) std::filesystem::remove_all(workdir, ec);
}

}  // namespace quern::worker::detail
