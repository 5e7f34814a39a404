// The "echo" executor: a minimal third-party plugin. It returns the job's
// args as its result and logs each arg as one stdout line ("name=value").
//
// Thread-safety: the host calls execute() on one instance from one thread at
// a time; interrupt() may come from another thread, hence the atomic.
#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "quern/executor.hpp"

namespace {

// ordered_json, not json: the host keeps the submission's key order of args
// and the log lines should follow it.
using nlohmann::ordered_json;

class EchoExecutor {
 public:
  // config_json is this plugin's config object from the worker's config
  // ("{}" when none); throwing here refuses the config with the message.
  explicit EchoExecutor(std::string_view /*config_json*/) {}

  quern_status execute(std::string_view job_json, quern::sdk::JobContext& ctx) {
    interrupted_.store(false, std::memory_order_relaxed);
    // A parse error throws; the SDK wrapper turns it into QUERN_STATUS_INTERNAL
    // with the message, so nothing escapes into the host.
    const ordered_json job = ordered_json::parse(job_json);
    const ordered_json args = job.value("args", ordered_json::object());
    if (!args.is_object()) {
      ctx.set_error("args must be a JSON object");
      return QUERN_STATUS_FAILURE;
    }
    for (const auto& [name, value] : args.items()) {
      // Poll between steps so that a cancel or timeout stops the job promptly.
      if (const int32_t why = ctx.cancelled(); why != QUERN_RUNNING || interrupted_.load()) {
        return quern::sdk::stop_status(ctx, why);
      }
      ctx.log(QUERN_STREAM_STDOUT,
              name + "=" + (value.is_string() ? value.get<std::string>() : value.dump()));
    }
    ctx.set_result(args.dump());
    return QUERN_STATUS_SUCCESS;
  }

  void interrupt() { interrupted_.store(true, std::memory_order_relaxed); }

 private:
  std::atomic<bool> interrupted_{false};
};

}  // namespace

QUERN_EXECUTOR_PLUGIN(EchoExecutor, "echo", "1.0.0", /*languages*/ "echo", /*tags*/ "echo", /*caps*/ 0)
