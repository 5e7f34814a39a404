// The bash executor: runs a job's code as a bash script in a child process.
//
// Config (create): {"interpreter": "/bin/bash"} (optional; resolved with
// realpath once, here, so each job execs the real binary directly).
//
// Job (execute): {"id", "attempt", "language": "bash", "code", "args": {...},
// "timeout_s", "workdir", "env": {...}}. The code is written to
// <workdir>/main.sh and run as `<interpreter> main.sh ARG...` in workdir:
//  - args, in declaration order, are the positional arguments (strings as
//    they are, other JSON values as their JSON text), and also environment
//    variables when the name is a valid shell identifier (others are skipped);
//  - the environment is exactly the host's "env" object plus those args
//    (args win on a clash); nothing of the worker's own environment leaks.
// Result: when the last non-blank stdout line is JSON, that value; else null.
// Status: exit 0 → SUCCESS; exit N → FAILURE "exit code N\n<stderr tail>";
// killed by a signal → FAILURE naming it; stopped because of a timeout →
// TIMEOUT; because of cancel / shutdown / interrupt() → CANCELED.
//
// Thread-safety: as for any executor, one execute at a time per instance;
// interrupt() from any thread.
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "quern/executor.hpp"
#include "quern/limits.h"
#include "quern/process.hpp"

namespace {

using nlohmann::ordered_json;
using quern::sdk::JobContext;

bool is_shell_identifier(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

// Strings as they are; anything else as its JSON text.
std::string arg_text(const ordered_json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

class BashExecutor {
 public:
  explicit BashExecutor(std::string_view config_json) {
    ordered_json config = config_json.empty() ? ordered_json::object() : ordered_json::parse(config_json);
    if (!config.is_object()) throw std::invalid_argument("bash: config must be a JSON object");
    std::string wanted = "/bin/bash";
    if (auto it = config.find("interpreter"); it != config.end()) {
      if (!it->is_string()) throw std::invalid_argument("bash: \"interpreter\" must be a string");
      wanted = it->get<std::string>();
    }
    char resolved[PATH_MAX];
    if (::realpath(wanted.c_str(), resolved) == nullptr)
      throw std::runtime_error("bash: interpreter '" + wanted + "': " + std::strerror(errno));
    if (::access(resolved, X_OK) != 0)
      throw std::runtime_error("bash: interpreter '" + wanted + "' is not executable");
    interpreter_ = resolved;
  }

  quern_status execute(std::string_view job_json, JobContext& ctx) {
    interrupted_.store(false);
    ordered_json job = ordered_json::parse(job_json);
    const std::string workdir = job.at("workdir").get<std::string>();
    const std::string code = job.value("code", std::string());

    {
      std::ofstream script(workdir + "/main.sh", std::ios::binary | std::ios::trunc);
      script << code;
      if (!script.flush()) throw std::runtime_error("bash: cannot write " + workdir + "/main.sh");
    }

    quern::sdk::ProcessSpec spec;
    spec.workdir = workdir;
    spec.argv = {interpreter_, "main.sh"};
    ordered_json env = ordered_json::object();
    if (auto it = job.find("env"); it != job.end() && it->is_object()) env = *it;
    if (auto it = job.find("args"); it != job.end() && it->is_object()) {
      for (const auto& [name, value] : it->items()) {
        std::string text = arg_text(value);
        spec.argv.push_back(text);
        if (is_shell_identifier(name)) env[name] = text;
      }
    }
    for (const auto& [name, value] : env.items()) spec.env.push_back(name + "=" + arg_text(value));

    quern::sdk::ProcessOptions options;
    options.interrupted = &interrupted_;
    quern::sdk::ProcessResult r = quern::sdk::run_process(spec, ctx, options);

    if (r.stop_reason != QUERN_RUNNING) return quern::sdk::stop_status(ctx, r.stop_reason);

    // The result convention applies to failed runs too: a script may print
    // a JSON diagnostic before exiting non-zero.
    // Not JSON, or nested past the host's limit (parsing and printing it
    // would recurse that deep): no result.
    std::string_view last = r.last_stdout_line;
    ordered_json result =
        quern_json_too_deep(last.data(), last.size(), QUERN_MAX_JSON_DEPTH)
            ? ordered_json(ordered_json::value_t::discarded)
            : ordered_json::parse(last.begin(), last.end(), nullptr, /*allow_exceptions=*/false);
    ctx.set_result(result.is_discarded() ? "null" : result.dump());

    if (r.term_signal != 0) {
      std::string msg = "killed by " + quern::sdk::signal_name(r.term_signal);
      if (!r.stderr_tail.empty()) msg += "\n" + r.stderr_tail;
      ctx.set_error(msg);
      return QUERN_STATUS_FAILURE;
    }
    if (r.exit_code != 0) {
      std::string msg = "exit code " + std::to_string(r.exit_code);
      if (!r.stderr_tail.empty()) msg += "\n" + r.stderr_tail;
      ctx.set_error(msg);
      return QUERN_STATUS_FAILURE;
    }
    return QUERN_STATUS_SUCCESS;
  }

  std::string health() {
    if (::access(interpreter_.c_str(), X_OK) != 0) return "interpreter " + interpreter_ + " is gone";
    return {};
  }

  void interrupt() { interrupted_.store(true); }

 private:
  std::string interpreter_;
  std::atomic<bool> interrupted_{false};
};

}  // namespace

QUERN_EXECUTOR_PLUGIN(BashExecutor, "bash", "1.0.0", "bash", "bash", QUERN_CAP_SPAWNS_PROCESSES)
