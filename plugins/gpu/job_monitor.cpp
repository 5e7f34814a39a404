// See job_monitor.h.
#include "job_monitor.h"

#include <fstream>
#include <sstream>
#include <string_view>

namespace quern::gpu {

namespace {

constexpr std::size_t kTailLines = 20;
constexpr std::size_t kTailBytes = 4096;

std::string_view view(quern_str s) {
  return s.data == nullptr ? std::string_view() : std::string_view(s.data, s.size);
}

// The process group of pid from /proc/<pid>/stat, or -1. Fields after the
// command name (which may contain spaces and parentheses, hence the last
// ')'): state, ppid, pgrp.
int64_t process_group_of(unsigned pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return -1;
  std::size_t close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::string state, ppid;
  int64_t pgrp = -1;
  std::istringstream rest(line.substr(close + 1));
  rest >> state >> ppid >> pgrp;
  return rest ? pgrp : -1;
}

}  // namespace

JobProxy::JobProxy(const quern::sdk::JobContext& inner) : inner_(inner), context_(&table_, nullptr) {
  table_.struct_size = sizeof(quern_job_callbacks);
  table_.log_line = &JobProxy::log_line;
  table_.progress = &JobProxy::progress;
  table_.is_cancelled = &JobProxy::is_cancelled;
  table_.set_result = &JobProxy::set_result;
  table_.set_error = &JobProxy::set_error;
  table_.set_process_group = &JobProxy::set_process_group;
  context_ = quern::sdk::JobContext(&table_, reinterpret_cast<quern_job_ctx*>(this));
}

void JobProxy::log_line(quern_job_ctx* ctx, int32_t stream, quern_str line) {
  JobProxy* p = self(ctx);
  p->inner_.log(stream, view(line));
  if (stream != QUERN_STREAM_STDOUT) return;
  std::lock_guard lock(p->mu_);
  p->tail_.emplace_back(view(line));
  p->tail_bytes_ += line.size + 1;
  while (p->tail_.size() > kTailLines || (p->tail_bytes_ > kTailBytes && p->tail_.size() > 1)) {
    p->tail_bytes_ -= p->tail_.front().size() + 1;
    p->tail_.pop_front();
  }
}
void JobProxy::progress(quern_job_ctx* ctx, double fraction) { self(ctx)->inner_.progress(fraction); }
int32_t JobProxy::is_cancelled(quern_job_ctx* ctx) { return self(ctx)->inner_.cancelled(); }
void JobProxy::set_result(quern_job_ctx* ctx, quern_str json) { self(ctx)->inner_.set_result(view(json)); }
void JobProxy::set_error(quern_job_ctx* ctx, quern_str message) {
  self(ctx)->inner_.set_error(view(message));
}
void JobProxy::set_process_group(quern_job_ctx* ctx, int64_t pgid) {
  self(ctx)->pgid_.store(pgid);
  self(ctx)->inner_.set_process_group(pgid);
}

std::string JobProxy::stdout_tail() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& l : tail_) {
    if (!out.empty()) out.push_back('\n');
    out += l;
  }
  // One very long last line: keep its end.
  if (out.size() > kTailBytes) out.erase(0, out.size() - kTailBytes);
  return out;
}

MemorySampler::MemorySampler(const Nvml& nvml, const std::vector<Device>& devices,
                             const std::atomic<int64_t>& pgid, std::chrono::milliseconds interval)
    : nvml_(nvml), devices_(devices), pgid_(pgid), interval_(interval) {
  for (const Device& d : devices_) baseline_.push_back(nvml_.used_bytes(d.nvml_handle));
  thread_ = std::thread([this] { run(); });
}

MemorySampler::~MemorySampler() {
  std::string ignored;
  finish(&ignored);
}

void MemorySampler::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    wake_.wait_for(lock, interval_, [this] { return stop_; });
    if (stop_) break;
    lock.unlock();
    sample();
    lock.lock();
  }
}

void MemorySampler::sample() {
  const int64_t pgid = pgid_.load();
  uint64_t processes = 0, delta = 0;
  bool matched = false, any_delta = false;
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    void* handle = devices_[i].nvml_handle;
    if (pgid > 0) {
      if (auto procs = nvml_.compute_processes(handle)) {
        for (const NvmlProcess& p : *procs) {
          if (!p.used_bytes || process_group_of(p.pid) != pgid) continue;
          processes += *p.used_bytes;
          matched = true;
        }
      }
    }
    if (auto used = nvml_.used_bytes(handle); used && baseline_[i]) {
      any_delta = true;
      if (*used > *baseline_[i]) delta += *used - *baseline_[i];
    }
  }
  std::lock_guard lock(mu_);
  if (matched && (!peak_processes_ || processes > *peak_processes_)) peak_processes_ = processes;
  if (any_delta && (!peak_delta_ || delta > *peak_delta_)) peak_delta_ = delta;
}

std::optional<uint64_t> MemorySampler::finish(std::string* method) {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  constexpr uint64_t MB = 1024 * 1024;
  if (peak_processes_) {
    *method = "processes";
    return (*peak_processes_ + MB - 1) / MB;
  }
  if (peak_delta_) {
    *method = "device_used_delta";
    return (*peak_delta_ + MB - 1) / MB;
  }
  // Sampled too briefly to see anything, or NVML failed every time; the
  // baseline alone says the devices answered, so a zero is still honest.
  bool answered = false;
  for (const auto& b : baseline_) answered = answered || b.has_value();
  if (answered) {
    *method = "device_used_delta";
    return 0;
  }
  return std::nullopt;
}

}  // namespace quern::gpu
