// quern-slot: runs one executor plugin instance for a worker slot, in its
// own process (slot_process.h). Started by the worker only, with fds 3 (data
// socket), 4 (control socket) and 5 (the shared stop page); not a command
// for people. Ends when the worker closes the data socket or dies (the
// parent-death signal).
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "host/plugin/plugin_registry.h"
#include "host/slot/slot_protocol.h"

namespace {

using quern::slot::FrameWriter;

constexpr int kDataFd = 3, kCtlFd = 4, kStopFd = 5;

// What a job reports, as frames: lines and the process group at once, the
// result and error with the final status.
class RemoteSink final : public quern::plugin::JobSink {
 public:
  RemoteSink(FrameWriter& w, const std::atomic<int32_t>& stop) : w_(w), stop_(stop) {}
  void log_line(int32_t stream, std::string_view line) override {
    char head[4];
    std::memcpy(head, &stream, 4);
    w_.write('L', std::string_view(head, 4), line);
  }
  void progress(double) override {}
  int32_t is_cancelled() override { return stop_.load(std::memory_order_relaxed); }
  void set_result(std::string_view json) override {
    std::lock_guard lock(mu_);
    result_.assign(json);
  }
  void set_error(std::string_view message) override {
    std::lock_guard lock(mu_);
    error_.assign(message);
  }
  void set_process_group(int64_t pgid) override {
    char v[8];
    std::memcpy(v, &pgid, 8);
    w_.write('G', std::string_view(v, 8));
  }
  void done(int32_t status) {
    std::lock_guard lock(mu_);
    std::string head(8, '\0');
    const auto size = static_cast<uint32_t>(result_.size());
    std::memcpy(head.data(), &status, 4);
    std::memcpy(head.data() + 4, &size, 4);
    head += result_;
    w_.write('D', head, error_);
  }

 private:
  FrameWriter& w_;
  const std::atomic<int32_t>& stop_;
  std::mutex mu_;
  std::string result_, error_;  // guarded by mu_
};

}  // namespace

// Under AddressSanitizer (CI's sanitizer build) a plugin's segfault must
// still end this process by its signal, as in production: the signal is
// how the worker names the crash. Unused in other builds.
extern "C" __attribute__((visibility("default"), used)) const char* __asan_default_options() {
  return "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:handle_abort=0";
}

int main() {
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, kStopFd, 0);
  if (page == MAP_FAILED) return 2;
  auto* stop = static_cast<std::atomic<int32_t>*>(page);
  FrameWriter writer(kDataFd);

  auto hello = quern::slot::read_frame(kDataFd);
  if (!hello || hello->type != 'C') return 2;
  auto doc = nlohmann::json::parse(hello->payload, nullptr, false);
  if (!doc.is_object() || !doc.value("plugin", nlohmann::json()).is_string() ||
      !doc.value("config", nlohmann::json()).is_string())
    return 2;
  quern::plugin::PluginRegistry registry;
  if (quern::Status s = registry.load_file(doc["plugin"].get<std::string>()); !s) {
    writer.write('c', s.message());
    return 1;
  }
  const quern::plugin::LoadedPlugin& plugin = *registry.plugins().front();
  auto created = plugin.create(doc["config"].get<std::string>());
  if (!created) {
    writer.write('c', created.message());
    return 1;
  }
  std::unique_ptr<quern::plugin::Executor> executor = std::move(created).value();
  writer.write('c', "");

  // The plugin's interrupt(), on its own thread, as in the worker.
  std::thread([e = executor.get()] {
    char byte;
    while (::read(kCtlFd, &byte, 1) == 1) e->interrupt();
  }).detach();

  while (true) {
    auto f = quern::slot::read_frame(kDataFd);
    // The worker is gone or done with us. No destructors: the control
    // thread may still hold the instance, and nothing here needs flushing.
    if (!f) ::_exit(0);
    if (f->type == 'E') {
      RemoteSink sink(writer, *stop);
      const quern_status rc = executor->execute(f->payload, sink);
      sink.done(rc);
    } else if (f->type == 'P') {
      quern::Status s = executor->prepare(f->payload);
      writer.write('p', s ? std::string() : s.message());
    } else if (f->type == 'H') {
      quern::Status s = executor->health();
      writer.write('h', s ? std::string() : s.message());
    }
  }
}
