// The noop executor: runs nothing, in process. Used by tests and by the
// queue benchmark, so it must stay cheap: one small JSON parse per job, no
// child process, no file system access.
//
// Job args (all optional):
//   "sleep_ms": N      sleep N ms, ended early by interrupt() (which the
//                      host calls on every stop): then cancelled() says why
//                      (timeout → TIMEOUT, cancel/shutdown → CANCELED); it is
//                      also polled every 100 ms, for a host that never
//                      interrupts. A benchmark's no-op job must not cost
//                      wake-ups of its own;
//   "stubborn_ms": N   sleep N ms without ever polling (a plugin that
//                      ignores stops, for tests of the host's outcome);
//   "log": ["l", ...]  log these lines to stdout;
//   "fail": "msg"      fail with this error (after sleeping and logging);
//   "result": <any>    the result; default {"ok": true}.
//
// Thread-safety: one execute at a time per instance; interrupt() from any thread.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "quern/executor.hpp"

namespace {

using nlohmann::json;
using quern::sdk::JobContext;

class NoopExecutor {
 public:
  explicit NoopExecutor(std::string_view /*config_json*/) {}

  quern_status execute(std::string_view job_json, JobContext& ctx) {
    interrupted_.store(false, std::memory_order_relaxed);
    const json job = json::parse(job_json);
    static const json kEmpty = json::object();
    auto args_it = job.find("args");
    const json& args = args_it != job.end() && args_it->is_object() ? *args_it : kEmpty;

    if (auto it = args.find("sleep_ms"); it != args.end() && it->is_number()) {
      using Clock = std::chrono::steady_clock;
      const auto until = Clock::now() + std::chrono::milliseconds(it->get<int64_t>());
      while (true) {
        int32_t why = ctx.cancelled();
        if (why == QUERN_RUNNING && interrupted_.load(std::memory_order_relaxed))
          why = QUERN_CANCEL_REQUESTED;
        if (why != QUERN_RUNNING) return quern::sdk::stop_status(ctx, why);
        const auto now = Clock::now();
        if (now >= until) break;
        std::unique_lock lock(mu_);
        wake_.wait_until(lock, std::min<Clock::time_point>(until, now + std::chrono::milliseconds(100)),
                         [&] { return interrupted_.load(std::memory_order_relaxed); });
      }
    }
    if (auto it = args.find("stubborn_ms"); it != args.end() && it->is_number())
      std::this_thread::sleep_for(std::chrono::milliseconds(it->get<int64_t>()));
    if (auto it = args.find("log"); it != args.end() && it->is_array()) {
      for (const auto& line : *it)
        ctx.log(QUERN_STREAM_STDOUT, line.is_string() ? line.get<std::string>() : line.dump());
    }
    if (auto it = args.find("fail"); it != args.end()) {
      ctx.set_error(it->is_string() ? it->get<std::string>() : it->dump());
      return QUERN_STATUS_FAILURE;
    }
    auto result = args.find("result");
    ctx.set_result(result != args.end() ? result->dump() : std::string(R"({"ok":true})"));
    return QUERN_STATUS_SUCCESS;
  }

  void interrupt() {
    {
      std::lock_guard lock(mu_);  // a sleeper between its check and its wait still sees it
      interrupted_.store(true, std::memory_order_relaxed);
    }
    wake_.notify_all();
  }

 private:
  std::atomic<bool> interrupted_{false};
  std::mutex mu_;
  std::condition_variable wake_;
};

}  // namespace

QUERN_EXECUTOR_PLUGIN(NoopExecutor, "noop", "1.0.0", "noop", "noop", 0)
