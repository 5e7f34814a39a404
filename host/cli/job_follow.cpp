#include "host/cli/job_follow.h"

#include <fstream>
#include <ostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "host/common/json_input.h"

namespace quern::cli {

Status load_script_file(const std::filesystem::path& file, JobRequest& req) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::error("cannot read " + file.string());
  std::stringstream ss;
  ss << in.rdbuf();
  req.code = ss.str();
  req.script_path = file.string();
  if (req.language.empty()) {
    auto ext = file.extension().string();
    if (ext == ".sh" || ext == ".bash")
      req.language = "bash";
    else if (ext == ".py")
      req.language = "python3";
    else if (ext == ".sql")
      req.language = "sql";
    else
      return Status::error(file.string() + ": cannot tell the language from the extension '" + ext +
                           "'; pass --language");
  }
  if (req.args_json == "{}") {
    std::istringstream lines(req.code);
    std::string line;
    const std::string marker = "# quern:args ";
    while (std::getline(lines, line)) {
      if (line.rfind(marker, 0) == 0) {
        req.args_json = line.substr(marker.size());
        break;
      }
    }
  }
  return Status::ok();
}

StatusOr<jobs::Submission> make_submission(const JobRequest& req) {
  if (req.language.empty()) return Status::invalid("no language: pass --language (e.g. bash)");
  auto parsed = json_input::parse<nlohmann::ordered_json>(req.args_json, "--args");
  if (!parsed) return parsed.status();
  if (!parsed->is_object())
    return Status::invalid("--args must be a JSON object, e.g. '{\"name\": \"world\"}'");
  if (Status s = json_input::check_storable(*parsed, "--args"); !s) return s;
  if (req.priority < queue::kMinPriority || req.priority > queue::kMaxPriority)
    return Status::invalid("--priority must be between 1 and 100, got " + std::to_string(req.priority));
  if (req.timeout_s < 0) return Status::invalid("--timeout must not be negative");
  jobs::Submission sub;
  sub.script.language = req.language;
  sub.script.content = req.code;
  sub.script.path = req.script_path;
  sub.request.args = std::move(parsed).value();
  sub.request.tag = req.tag;
  sub.request.priority = req.priority != queue::kDefaultPriority ? req.priority : 0;
  sub.request.timeout_s = req.timeout_s;
  return sub;
}

jobs::Rules job_rules(const config::Config& cfg) {
  return jobs::Rules{cfg.routing_rules, cfg.limits, cfg.max_timeout_s, nullptr};
}

StatusOr<queue::NewJob> make_job(const JobRequest& req, const config::Config& cfg) {
  auto sub = make_submission(req);
  if (!sub) return sub.status();
  return jobs::build_job(job_rules(cfg), *sub);
}

int exit_code_for(const std::string& state) {
  if (state == "success") return 0;
  if (state == "timeout") return 124;
  if (state == "canceled") return 130;
  return 1;
}

StatusOr<queue::JobRecord> follow_job(queue::Queue& q, int64_t id, std::ostream* logs,
                                      const std::function<bool()>& cancel_requested) {
  int64_t offset = 0;
  bool canceled = false;
  auto delay = std::chrono::milliseconds(2);
  while (true) {
    if (cancel_requested && !canceled && cancel_requested()) {
      canceled = true;
      if (auto c = q.cancel(id, "canceled from the command line"); !c) return c.status();
    }
    auto rec = q.get_job(id);
    if (!rec) return rec.status();
    if (!*rec)  // finished and pruned (<retention>) between two polls
      return Status::not_found("job " + std::to_string(id) +
                               " is gone: finished and pruned before it was read");
    const bool finished = (*rec)->state != "queued" && (*rec)->state != "running";
    if (logs) {
      auto text = q.read_logs(id, offset);
      if (!text) return text.status();
      if (!text->empty()) {
        *logs << *text << std::flush;
        offset += static_cast<int64_t>(text->size());
      }
    }
    if (finished) return std::move(**rec);
    std::this_thread::sleep_for(delay);  // polling interval, not synchronization
    delay = std::min(delay * 2, std::chrono::milliseconds(50));
  }
}

}  // namespace quern::cli
