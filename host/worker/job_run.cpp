#include "host/worker/job_run.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "host/common/json_input.h"
#include "host/common/utf8.h"

namespace quern::worker {

void JobRun::log_line(int32_t stream, std::string_view line) {
  std::string clean;
  const text::Repairs repairs = text::append_storable(clean, line);
  std::lock_guard lock(mu_);
  if (repairs.any() && !std::exchange(repair_noted_, true))
    append_line(QUERN_STREAM_SYSTEM,
                "the job's output is not valid UTF-8 text: invalid bytes and NUL bytes are stored as "
                "U+FFFD (\xEF\xBF\xBD)");
  // A long line is stored in pieces, cut between characters.
  std::string_view rest = clean;
  while (rest.size() > kMaxLogLineBytes) {
    size_t cut = kMaxLogLineBytes;
    while (cut > 0 && (static_cast<unsigned char>(rest[cut]) & 0xC0) == 0x80) --cut;
    append_line(stream, rest.substr(0, cut));
    rest.remove_prefix(cut);
  }
  append_line(stream, rest);
}

void JobRun::append_line(int32_t stream, std::string_view line) {
  if (log_truncated_) return;
  if (logged_bytes_ + line.size() + 1 > kMaxLogBytes) {
    log_truncated_ = true;
    logs_ += "[quern] log truncated: the job wrote more than 32 MiB\n";
    return;
  }
  // stderr and system lines are marked so readers can tell them apart
  // without a per-line stream column.
  if (stream == QUERN_STREAM_SYSTEM) logs_ += "[quern] ";
  logs_.append(line);
  logs_.push_back('\n');
  logged_bytes_ += line.size() + 1;
}

void JobRun::set_result(std::string_view json) {
  std::lock_guard lock(mu_);
  // Kept raw (checked in outcome()); one byte over the limit is enough to fail it.
  result_json_.assign(json.substr(0, kMaxResultBytes + 1));
  has_result_ = true;
}

void JobRun::set_error(std::string_view message) {
  std::string clean = text::to_storable(message.substr(0, kMaxErrorBytes));
  std::lock_guard lock(mu_);
  error_ = std::move(clean);
}

bool JobRun::request_stop(int32_t reason) {
  int32_t expected = QUERN_RUNNING;
  return stop_reason_.compare_exchange_strong(expected, reason);
}

std::string JobRun::take_logs() {
  std::lock_guard lock(mu_);
  std::string out;
  out.swap(logs_);
  return out;
}

size_t JobRun::pending_log_bytes() const {
  std::lock_guard lock(mu_);
  return logs_.size();
}

queue::Completion JobRun::outcome(quern_status rc, int timeout_s) const {
  queue::Completion c;
  c.id = job_.id;
  c.attempt = job_.attempt;
  std::lock_guard lock(mu_);
  const int32_t reason = stop_reason_.load();
  // The host owns the outcome: when it raised a stop, the record says why,
  // whatever the plugin returned (a script that traps SIGTERM and exits 0
  // is not a success). A stop by shutdown never gets here: the job is handed
  // back.
  if (reason == QUERN_TIMEOUT_REACHED || (reason == QUERN_RUNNING && rc == QUERN_STATUS_TIMEOUT)) {
    c.status = queue::JobStatus::timeout;
    c.error = "timed out after " + std::to_string(timeout_s) + " s";
    return c;
  }
  if (reason == QUERN_CANCEL_REQUESTED) {
    c.status = queue::JobStatus::canceled;
    c.error = "canceled";  // the queue records the canceler's reason
    return c;
  }
  if (rc == QUERN_STATUS_CANCELED) {  // the plugin stopped on its own (its interrupt, say)
    c.status = queue::JobStatus::canceled;
    c.error = error_.empty() ? "canceled" : error_;
    return c;
  }
  switch (rc) {
    case QUERN_STATUS_SUCCESS: {
      if (!has_result_ || result_json_.empty()) {
        c.status = queue::JobStatus::success;
        c.result = nullptr;
        return c;
      }
      if (result_json_.size() > kMaxResultBytes) {
        c.status = queue::JobStatus::failure;
        c.error = "the job's result is larger than " + std::to_string(kMaxResultBytes >> 20) +
                  " MiB (the limit); store large outputs elsewhere and return a reference";
        return c;
      }
      auto parsed = json_input::parse(result_json_, "the job's result");
      if (!parsed) {
        c.status = queue::JobStatus::failure;
        c.error = parsed.message();
        return c;
      }
      c.status = queue::JobStatus::success;
      c.result = std::move(parsed).value();
      return c;
    }
    case QUERN_STATUS_FAILURE:
      c.status = queue::JobStatus::failure;
      c.error = error_.empty() ? "failed" : error_;
      return c;
    default:
      c.status = queue::JobStatus::failure;
      c.error = "executor error: " + (error_.empty() ? std::string("unknown") : error_);
      return c;
  }
}

}  // namespace quern::worker
