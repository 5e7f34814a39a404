// The python executor: runs a job's code, a script that defines main(**args),
// with the system's python3. docs/PYTHON.md is the user-facing description.
//
// Config (create): {"interpreter": "/usr/bin/python3", "python_path": [dir,
// ...], "isolated": true, "prepare_timeout_s": 120}. The interpreter is
// resolved with realpath once, here; "isolated" runs it with -I (no PYTHON*
// variables, no user site, no script directory on sys.path), and python_path
// is put in front of sys.path by the runner (PYTHONPATH would be ignored).
//
// Standard mode (execute without a matching prepare): per job, the code is
// written to <workdir>/main.py and `<interpreter> -I -c <runner> run
// <workdir>/main.py <workdir>/.quern-result.json <python_path>` runs in
// workdir with exactly the host's env (quern::sdk::run_process), args as JSON
// on stdin. The runner writes the outcome to .quern-result.json: the result
// never travels over stdout, which is the job's log.
//
// Dedicated mode: prepare(script) starts one warm interpreter (WarmProcess)
// that imports the script once, in a per-instance directory under the system
// temp dir; execute() of a job whose hash (or, without hashes, code) matches
// sends it the args over a pipe instead of starting a process. See
// runner_source.h for the protocol and warm_process.h for the process side.
//
// Status: result → SUCCESS; an exception, SystemExit(non-zero), a
// non-serialisable result, an exit or signal without an outcome → FAILURE
// (error: the traceback / the reason, with the stderr tail where there is no
// traceback); stopped for a timeout → TIMEOUT; for cancel / shutdown /
// interrupt() → CANCELED.
//
// Thread-safety: the host calls create, prepare, execute and destroy on an
// instance from one thread at a time; interrupt() may come from any thread
// (it only sets an atomic flag that execute polls).
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "quern/executor.hpp"
#include "quern/limits.h"
#include "quern/process.hpp"
#include "runner_source.h"
#include "warm_process.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using quern::python::WarmProcess;
using quern::sdk::JobContext;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kKillGrace{2000};

std::string env_text(const ordered_json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

void write_file(const std::string& path, std::string_view text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!f.flush()) throw std::runtime_error("python: cannot write " + path);
}

// Reads the runner's outcome object; nullopt when missing or not JSON.
std::optional<ordered_json> read_outcome(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::stringstream text;
  text << f.rdbuf();
  const std::string s = text.str();
  // {"ok": true, "result": ...}: the result may nest QUERN_MAX_JSON_DEPTH deep.
  if (quern_json_too_deep(s.data(), s.size(), QUERN_MAX_JSON_DEPTH + 1))
    return ordered_json{{"ok", false},
                        {"error", "main() returned a value nested deeper than " +
                                      std::to_string(QUERN_MAX_JSON_DEPTH) + " levels (the limit)"}};
  ordered_json j = ordered_json::parse(s, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// Applies a runner outcome {"ok", "result" | "error"} to the job.
quern_status apply_outcome(const ordered_json& outcome, JobContext& ctx) {
  if (outcome.value("ok", false)) {
    auto it = outcome.find("result");
    ctx.set_result(it == outcome.end() ? "null" : it->dump());
    return QUERN_STATUS_SUCCESS;
  }
  ctx.set_error(outcome.value("error", std::string("the python runner reported a failure without a reason")));
  return QUERN_STATUS_FAILURE;
}

quern_status stopped(int32_t reason, JobContext& ctx) { return quern::sdk::stop_status(ctx, reason); }

class PythonExecutor {
 public:
  explicit PythonExecutor(std::string_view config_json) {
    ordered_json config = config_json.empty() ? ordered_json::object() : ordered_json::parse(config_json);
    if (!config.is_object()) throw std::invalid_argument("python: config must be a JSON object");
    std::string wanted = "/usr/bin/python3";
    if (auto it = config.find("interpreter"); it != config.end()) {
      if (!it->is_string()) throw std::invalid_argument("python: \"interpreter\" must be a string");
      wanted = it->get<std::string>();
    }
    char resolved[PATH_MAX];
    if (::realpath(wanted.c_str(), resolved) == nullptr)
      throw std::runtime_error("python: interpreter '" + wanted + "': " + std::strerror(errno));
    if (::access(resolved, X_OK) != 0 || !fs::is_regular_file(resolved))
      throw std::runtime_error("python: interpreter '" + wanted + "' is not executable");
    interpreter_ = resolved;

    ordered_json path = ordered_json::array();
    if (auto it = config.find("python_path"); it != config.end()) {
      if (!it->is_array())
        throw std::invalid_argument("python: \"python_path\" must be an array of directories");
      for (const auto& dir : *it) {
        if (!dir.is_string() || dir.get<std::string>().empty() || dir.get<std::string>()[0] != '/')
          throw std::invalid_argument("python: \"python_path\" entries must be absolute paths");
        path.push_back(dir);
      }
    }
    python_path_json_ = path.dump();
    if (auto it = config.find("isolated"); it != config.end()) {
      if (!it->is_boolean()) throw std::invalid_argument("python: \"isolated\" must be true or false");
      isolated_ = it->get<bool>();
    }
    if (auto it = config.find("prepare_timeout_s"); it != config.end()) {
      if (!it->is_number() || it->get<double>() <= 0)
        throw std::invalid_argument("python: \"prepare_timeout_s\" must be a positive number");
      prepare_timeout_ = std::chrono::milliseconds(static_cast<int64_t>(it->get<double>() * 1000));
    }
  }

  ~PythonExecutor() {
    warm_.reset();  // kills and reaps the warm interpreter
    if (!instance_dir_.empty()) {
      std::error_code ec;
      fs::remove_all(instance_dir_, ec);
    }
  }

  // Starts (or keeps) the warm interpreter for this script. Throws, and
  // leaves the instance unprepared, when the script cannot be imported.
  void prepare(std::string_view script_json) {
    ordered_json script = ordered_json::parse(script_json);
    std::string code = script.value("code", std::string());
    std::string hash = script.contains("hash") ? env_text(script["hash"]) : std::string();
    if (prepared_ && same_script(code, hash) && warm_ && !warm_->exited()) return;
    // The host's sandbox for the warm interpreter, applied by the SDK's spawn.
    warm_sandbox_.clear();
    std::string setup;
    if (auto env = script.find("env"); env != script.end() && env->is_object()) {
      for (const char* name : {QUERN_SANDBOX_ENV, QUERN_SETUP_ENV})
        if (auto s = env->find(name); s != env->end() && s->is_string())
          warm_sandbox_.push_back(std::string(name) + "=" + s->get<std::string>());
      if (auto s = env->find(QUERN_SETUP_ENV); s != env->end() && s->is_string())
        setup = s->get<std::string>();
    }

    warm_.reset();  // redeploy: the old code never runs again
    prepared_.reset();
    if (instance_dir_.empty()) {
      std::string tmpl = (fs::temp_directory_path() / "quern-python-warm-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr)
        throw std::system_error(errno, std::generic_category(), "python: mkdtemp " + tmpl);
      instance_dir_ = tmpl;
    }
    // The warm process may run as another user (QUERN_SETUP's user=): its directory is that user's.
    quern_setup parsed;
    if (quern_setup_parse(setup.data(), &parsed) == 0 && parsed.uid >= 0 &&
        ::chown(instance_dir_.c_str(), static_cast<uid_t>(parsed.uid), static_cast<gid_t>(parsed.gid)) != 0)
      throw std::system_error(errno, std::generic_category(), "python: chown " + instance_dir_);
    write_file(instance_dir_ + "/main.py", code);
    prepared_ = Prepared{std::move(code), std::move(hash)};

    JobContext nowhere(nullptr, nullptr);  // output while importing is dropped (kept in the error)
    std::string error = start_warm(
        nowhere, [] { return QUERN_RUNNING; }, Clock::now() + prepare_timeout_);
    if (!error.empty()) {
      prepared_.reset();
      throw std::runtime_error("python: prepare: " + error);
    }
  }

  quern_status execute(std::string_view job_json, JobContext& ctx) {
    interrupted_.store(false);
    ordered_json job = ordered_json::parse(job_json);
    if (prepared_) {
      std::string hash = job.contains("hash") ? env_text(job["hash"]) : std::string();
      if (same_script(job.value("code", std::string()), hash)) return execute_warm(job, ctx);
    }
    return execute_standard(job, ctx);
  }

  std::string health() {
    if (::access(interpreter_.c_str(), X_OK) != 0) return "interpreter " + interpreter_ + " is gone";
    return {};
  }

  void interrupt() { interrupted_.store(true); }

 private:
  struct Prepared {
    std::string code;
    std::string hash;
  };

  bool same_script(const std::string& code, const std::string& hash) const {
    if (!prepared_) return false;
    if (!prepared_->hash.empty() && !hash.empty()) return prepared_->hash == hash;
    return prepared_->code == code;
  }

  std::vector<std::string> runner_argv(std::initializer_list<std::string> mode_args) const {
    std::vector<std::string> argv{interpreter_};
    if (isolated_) argv.push_back("-I");
    argv.push_back("-c");
    argv.push_back(quern::python::kRunnerSource);
    argv.insert(argv.end(), mode_args);
    argv.push_back(python_path_json_);
    return argv;
  }

  // One process per job, through run_process.
  quern_status execute_standard(const ordered_json& job, JobContext& ctx) {
    auto wd = job.find("workdir");
    if (wd == job.end() || !wd->is_string() || wd->get<std::string>().empty())
      throw std::invalid_argument("python: the job has no workdir");
    const std::string workdir = wd->get<std::string>();
    const std::string main_py = workdir + "/main.py";
    const std::string result_path = workdir + "/.quern-result.json";
    write_file(main_py, job.value("code", std::string()));
    std::error_code ec;
    fs::remove(result_path, ec);  // a stale outcome must never be read back

    quern::sdk::ProcessSpec spec;
    spec.workdir = workdir;
    spec.argv = runner_argv({"run", main_py, result_path});
    if (auto it = job.find("env"); it != job.end() && it->is_object())
      for (const auto& [name, value] : it->items()) spec.env.push_back(name + "=" + env_text(value));
    auto args = job.find("args");
    spec.stdin_text = args == job.end() || args->is_null() ? std::string("{}") : args->dump();

    quern::sdk::ProcessOptions options;
    options.kill_grace = kKillGrace;
    options.interrupted = &interrupted_;
    quern::sdk::ProcessResult r = quern::sdk::run_process(spec, ctx, options);
    if (r.stop_reason != QUERN_RUNNING) return stopped(r.stop_reason, ctx);

    std::optional<ordered_json> outcome = read_outcome(result_path);
    fs::remove(result_path, ec);
    const bool clean_exit = r.term_signal == 0 && r.exit_code == 0;
    if (outcome && (clean_exit || !outcome->value("ok", false))) return apply_outcome(*outcome, ctx);
    std::string msg = r.term_signal != 0 ? "killed by " + quern::sdk::signal_name(r.term_signal)
                                         : "exit code " + std::to_string(r.exit_code);
    if (clean_exit) msg = "the python runner exited without an outcome";
    if (!r.stderr_tail.empty()) msg += "\n" + r.stderr_tail;
    ctx.set_error(msg);
    return QUERN_STATUS_FAILURE;
  }

  // Starts the warm interpreter and waits for its ready line. Returns "" when
  // ready, else why not (import traceback, death, deadline, stop). The
  // process group is reported to ctx while it starts.
  std::string start_warm(JobContext& ctx, const std::function<int32_t()>& stop, Clock::time_point deadline,
                         int32_t* stop_reason = nullptr) {
    warm_.reset();
    std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
                                    "HOME=" + instance_dir_, "TMPDIR=" + instance_dir_};
    env.insert(env.end(), warm_sandbox_.begin(), warm_sandbox_.end());
    warm_ = std::make_unique<WarmProcess>(runner_argv({"warm", instance_dir_ + "/main.py"}), env,
                                          instance_dir_, kKillGrace);
    ctx.set_process_group(warm_->pid());
    WarmProcess::Outcome ready = warm_->exchange("", ctx, stop, deadline);
    ctx.set_process_group(0);
    std::string error;
    switch (ready.kind) {
      case WarmProcess::Outcome::Kind::kReply: {
        ordered_json j = ordered_json::parse(ready.reply, nullptr, false);
        if (!j.is_discarded() && j.is_object() && j.value("ready", false)) return {};
        error = j.is_object() ? j.value("error", ready.reply) : ready.reply;
        break;
      }
      case WarmProcess::Outcome::Kind::kStopped:
        if (stop_reason != nullptr) *stop_reason = ready.stop_reason;
        error = "stopped while the warm interpreter was starting";
        break;
      case WarmProcess::Outcome::Kind::kDeadline:
        error = "the warm interpreter did not import the script within the prepare timeout";
        break;
      case WarmProcess::Outcome::Kind::kDied:
        error = "the warm interpreter died while importing the script (" + ready.exit_description + ")";
        if (!ready.stderr_tail.empty()) error += "\n" + ready.stderr_tail;
        break;
    }
    warm_.reset();
    return error;
  }

  // One request to the warm interpreter, restarting it first when it is gone.
  quern_status execute_warm(const ordered_json& job, JobContext& ctx) {
    auto stop = [&] {
      int32_t why = ctx.cancelled();
      if (why == QUERN_RUNNING && interrupted_.load(std::memory_order_relaxed)) why = QUERN_CANCEL_REQUESTED;
      return why;
    };
    const auto forever = Clock::time_point::max();
    if (!warm_ || warm_->exited()) {
      // Crashed, timed out or killed since the last job: re-import the script.
      int32_t reason = QUERN_RUNNING;
      std::string error = start_warm(ctx, stop, forever, &reason);
      if (reason != QUERN_RUNNING) return stopped(reason, ctx);
      if (!error.empty()) {
        ctx.set_error(error);
        return QUERN_STATUS_FAILURE;
      }
    }

    ordered_json request = ordered_json::object();
    auto args = job.find("args");
    request["args"] = args == job.end() ? ordered_json::object() : *args;
    request["id"] = job.value("id", ordered_json());
    request["attempt"] = job.value("attempt", ordered_json());

    ctx.set_process_group(warm_->pid());  // the host may kill it on timeout itself
    WarmProcess::Outcome out = warm_->exchange(request.dump() + "\n", ctx, stop, forever);
    ctx.set_process_group(0);  // so the host does not kill it after execute returns
    switch (out.kind) {
      case WarmProcess::Outcome::Kind::kReply: {
        ordered_json reply = quern_json_too_deep(out.reply.data(), out.reply.size(), QUERN_MAX_JSON_DEPTH + 2)
                                 ? ordered_json(ordered_json::value_t::discarded)
                                 : ordered_json::parse(out.reply, nullptr, false);
        if (reply.is_discarded() || !reply.is_object()) {
          warm_.reset();
          ctx.set_error("the warm interpreter sent an unreadable reply");
          return QUERN_STATUS_INTERNAL;
        }
        return apply_outcome(reply, ctx);
      }
      case WarmProcess::Outcome::Kind::kStopped:
        warm_.reset();  // restarted lazily by the next job
        return stopped(out.stop_reason, ctx);
      case WarmProcess::Outcome::Kind::kDeadline:
      case WarmProcess::Outcome::Kind::kDied:
        break;
    }
    warm_.reset();
    std::string msg = "the warm python process died while running the job (" + out.exit_description + ")";
    if (!out.stderr_tail.empty()) msg += "\n" + out.stderr_tail;
    ctx.set_error(msg);
    return QUERN_STATUS_FAILURE;
  }

  std::string interpreter_;
  std::string python_path_json_ = "[]";
  bool isolated_ = true;
  std::chrono::milliseconds prepare_timeout_{120000};
  std::atomic<bool> interrupted_{false};

  // Dedicated mode.
  std::optional<Prepared> prepared_;
  std::string instance_dir_;  // created by the first prepare, removed in the destructor
  std::unique_ptr<WarmProcess> warm_;
  std::vector<std::string> warm_sandbox_;  // QUERN_SANDBOX=... and QUERN_SETUP=... from the prepare document
};

}  // namespace

QUERN_EXECUTOR_PLUGIN(PythonExecutor, "python", "1.0.0", "python3,python", "python3",
                      QUERN_CAP_SPAWNS_PROCESSES | QUERN_CAP_DEDICATED)
