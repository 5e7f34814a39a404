// The local integration (see local_workers.h).
#include "host/autoscale/local_workers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "host/autoscale/autoscale_store.h"
#include "host/log/log.h"

namespace quern::autoscale {
namespace {

class LocalWorkers : public Integration {
 public:
  LocalWorkers(const config::WorkerGroup& g, LocalWorkersOptions o) : group_(g.name), options_(std::move(o)) {
    if (options_.quern_binary.empty()) {
      std::error_code ec;
      options_.quern_binary = std::filesystem::read_symlink("/proc/self/exe", ec);
    }
  }
  ~LocalWorkers() override { shutdown(); }

  // What we run: none at the start; after a lost and retaken lock, the
  // workers still running (so the idle rule, not a reset to 0, stops them).
  int initial_count(std::optional<int>, const Signals&) override {
    reap();
    return active();
  }

  Status apply(int from, int to, const Decision&) override {
    (void)from;
    reap();
    int running = active();
    for (; running < to; ++running) {
      if (Status s = start_one(); !s) return s;
    }
    if (running > to) stop_some(running - to);
    return Status::ok();
  }

  void reconcile(int desired, AutoscaleStore& store) override {
    store_ = &store;
    reap();
    // A worker that ended without being told to (crashed, killed) is
    // replaced; one that cannot start is retried at the next tick.
    for (int n = active(); n < desired; ++n) {
      if (Status s = start_one(); !s) {
        log::error("autoscale", "group " + group_ + ": " + s.message());
        break;
      }
    }
    if (active() > desired) stop_some(active() - desired);
  }

  void shutdown() override {
    for (auto& [pid, w] : workers_)
      if (!w.stopping) {
        ::kill(pid, SIGTERM);
        w.stopping = true;
      }
    const auto deadline = std::chrono::steady_clock::now() + options_.stop_wait;
    while (!workers_.empty() && std::chrono::steady_clock::now() < deadline) {
      reap();
      if (!workers_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (auto& [pid, w] : workers_) ::kill(pid, SIGKILL);
    while (!workers_.empty()) {
      for (auto it = workers_.begin(); it != workers_.end();) {
        if (::waitpid(it->first, nullptr, 0) == it->first || errno == ECHILD) {
          gone(it->second.id);
          it = workers_.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

 private:
  struct Child {
    std::string id;
    bool stopping = false;
  };

  void gone(const std::string& id) {
    if (options_.on_worker_gone) options_.on_worker_gone(id);
  }

  int active() const {
    return static_cast<int>(
        std::count_if(workers_.begin(), workers_.end(), [](const auto& w) { return !w.second.stopping; }));
  }

  void reap() {
    for (auto it = workers_.begin(); it != workers_.end();) {
      int status = 0;
      const pid_t r = ::waitpid(it->first, &status, WNOHANG);
      if (r == it->first || (r < 0 && errno == ECHILD)) {
        if (!it->second.stopping)
          log::warning("autoscale",
                       "group " + group_ + ": worker " + it->second.id + " ended unasked (" +
                           (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                                : "exit " + std::to_string(WEXITSTATUS(status))) +
                           "); a new one replaces it");
        gone(it->second.id);
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
  }

  Status start_one() {
    const std::string id = group_ + "-" + std::to_string(::getpid()) + "-" + std::to_string(++started_);
    std::vector<std::string> argv = {options_.quern_binary.string(),
                                     "worker",
                                     "--config",
                                     options_.config_file.string(),
                                     "--group",
                                     group_,
                                     "--worker-id",
                                     id,
                                     "--database-url",
                                     options_.database_url};
    if (!options_.data_dir.empty()) argv.insert(argv.end(), {"--data-dir", options_.data_dir});
    if (!options_.plugin_dir.empty()) argv.insert(argv.end(), {"--plugin-dir", options_.plugin_dir});
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return Status::error("starting a worker failed: fork: " + std::string(std::strerror(errno)));
    if (pid == 0) {
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::setpgid(0, 0);
      if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != parent) ::_exit(1);
      int in = ::open("/dev/null", O_RDONLY);
      if (in >= 0) ::dup2(in, 0);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::setpgid(pid, pid);
    workers_[pid] = Child{id, false};
    log::info("autoscale",
              "group " + group_ + ": started worker " + id + " (pid " + std::to_string(pid) + ")");
    return Status::ok();
  }

  // Stops n workers, idle ones first: by the running count each reports
  // (unregistered = 0), then the newest.
  void stop_some(int n) {
    std::vector<std::pair<pid_t, const Child*>> candidates;
    std::vector<std::string> ids;
    for (const auto& [pid, w] : workers_)
      if (!w.stopping) {
        candidates.emplace_back(pid, &w);
        ids.push_back(w.id);
      }
    std::map<std::string, int> running;
    if (store_ != nullptr) {
      if (auto r = store_->running_of(ids); r) {
        for (const auto& [id, count] : *r) running[id] = count;
      } else {
        log::warning("autoscale", "group " + group_ + ": " + r.message() + "; stopping the newest workers");
      }
    }
    std::stable_sort(candidates.begin(), candidates.end(), [&](const auto& a, const auto& b) {
      const int ra = running[a.second->id], rb = running[b.second->id];
      return ra != rb ? ra < rb : a.first > b.first;
    });
    for (int i = 0; i < n && i < static_cast<int>(candidates.size()); ++i) {
      const pid_t pid = candidates[static_cast<size_t>(i)].first;
      Child& w = workers_[pid];
      ::kill(pid, SIGTERM);
      w.stopping = true;
      log::info("autoscale", "group " + group_ + ": stopping worker " + w.id + " (" +
                                 std::to_string(running[w.id]) + " running jobs; it finishes them first)");
    }
  }

  const std::string group_;
  LocalWorkersOptions options_;
  std::map<pid_t, Child> workers_;
  AutoscaleStore* store_ = nullptr;  // the controller's, set by reconcile()
  int started_ = 0;
};

}  // namespace

std::unique_ptr<Integration> make_local_workers(const config::WorkerGroup& group,
                                                LocalWorkersOptions options) {
  return std::make_unique<LocalWorkers>(group, std::move(options));
}

}  // namespace quern::autoscale
