// A real JobSink for tests: records every callback, answers is_cancelled()
// through a function the test sets. Thread-safe (plugins may call from
// several threads).
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "host/plugin/plugin_registry.h"

namespace quern::testing {

class RecordingSink : public quern::plugin::JobSink {
 public:
  struct Line {
    int32_t stream;
    std::string text;
  };

  // Called on every is_cancelled(); returns QUERN_RUNNING by default.
  void set_cancel_check(std::function<int32_t()> check) {
    std::lock_guard lock(mu_);
    cancel_check_ = std::move(check);
  }

  void log_line(int32_t stream, std::string_view line) override {
    std::lock_guard lock(mu_);
    lines_.push_back({stream, std::string(line)});
  }
  void progress(double fraction) override {
    std::lock_guard lock(mu_);
    progress_.push_back(fraction);
  }
  int32_t is_cancelled() override {
    std::function<int32_t()> check;
    {
      std::lock_guard lock(mu_);
      ++cancel_calls_;
      check = cancel_check_;
    }
    return check ? check() : QUERN_RUNNING;
  }
  void set_result(std::string_view json) override {
    std::lock_guard lock(mu_);
    result_ = std::string(json);
  }
  void set_error(std::string_view message) override {
    std::lock_guard lock(mu_);
    error_ = std::string(message);
  }
  void set_process_group(int64_t pgid) override {
    std::lock_guard lock(mu_);
    pgids_.push_back(pgid);
  }

  std::vector<Line> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }
  // The texts of one stream's lines.
  std::vector<std::string> lines(int32_t stream) const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& l : lines_)
      if (l.stream == stream) out.push_back(l.text);
    return out;
  }
  std::vector<double> progress_values() const {
    std::lock_guard lock(mu_);
    return progress_;
  }
  std::optional<std::string> result() const {
    std::lock_guard lock(mu_);
    return result_;
  }
  std::optional<std::string> error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  std::vector<int64_t> process_groups() const {
    std::lock_guard lock(mu_);
    return pgids_;
  }
  int cancel_calls() const {
    std::lock_guard lock(mu_);
    return cancel_calls_;
  }

 private:
  mutable std::mutex mu_;
  std::function<int32_t()> cancel_check_;
  std::vector<Line> lines_;
  std::vector<double> progress_;
  std::optional<std::string> result_;
  std::optional<std::string> error_;
  std::vector<int64_t> pgids_;
  int cancel_calls_ = 0;
};

}  // namespace quern::testing
