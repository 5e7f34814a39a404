#include "host/slot/slot_process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include <nlohmann/json.hpp>

#include "quern/process.hpp"

namespace quern::slot {
namespace {

// Owns an fd until released.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string os_error(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

std::filesystem::path default_slot_program() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (ec ? std::filesystem::path(".") : self.parent_path()) / "quern-slot";
}

StatusOr<std::unique_ptr<SlotProcess>> SlotProcess::start(const std::filesystem::path& program,
                                                          const plugin::LoadedPlugin& p,
                                                          const std::string& config_json) {
  const std::string who = "plugin '" + p.info().name + "'";
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return Status::error(who + ": " + os_error("socketpair"));
  Fd data(sv[0]), data_child(sv[1]);
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return Status::error(who + ": " + os_error("socketpair"));
  Fd ctl(sv[0]), ctl_child(sv[1]);
  Fd page(::memfd_create("quern-slot-stop", MFD_CLOEXEC));
  if (page.get() < 0 || ::ftruncate(page.get(), 4096) != 0)
    return Status::error(who + ": " + os_error("memfd_create"));
  void* map = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, page.get(), 0);
  if (map == MAP_FAILED) return Status::error(who + ": " + os_error("mmap"));

  std::unique_ptr<SlotProcess> s(new SlotProcess());
  s->plugin_name_ = p.info().name;
  s->stop_word_ = new (map) std::atomic<int32_t>(QUERN_RUNNING);
  std::vector<std::string> env;
  for (char** e = ::environ; e && *e; ++e) env.emplace_back(*e);
  // fds 0-2: the worker's own (a plugin's stray prints and a crash's last
  // words land in the worker's log); 3 data, 4 control, 5 the stop page.
  sdk::SpawnSpec spec{
      {program.string()},       env, "", {0, 1, 2, data_child.get(), ctl_child.get(), page.get()},
      /*die_with_parent=*/true, {}};
  try {
    s->pid_ = sdk::spawn(spec, "the slot process (" + program.string() + ")");
  } catch (const std::exception& e) {
    ::munmap(map, 4096);
    s->stop_word_ = nullptr;
    return Status::error(who + ": " + e.what());
  }
  s->data_fd_ = data.release();
  s->ctl_fd_ = ctl.release();
  s->writer_ = std::make_unique<FrameWriter>(s->data_fd_);
  const std::string hello =
      nlohmann::json{{"plugin", p.info().file.string()}, {"config", config_json}}.dump();
  if (!s->writer_->write('C', hello))
    return Status::error(who + ": the slot process ended at start: " + s->reap());
  auto ready = read_frame(s->data_fd_);
  if (!ready) return Status::error(who + ": the slot process ended at start: " + s->reap());
  if (ready->type != 'c') return Status::error(who + ": the slot process answered out of turn");
  if (!ready->payload.empty()) return Status::error(ready->payload);
  return s;
}

SlotProcess::~SlotProcess() {
  if (data_fd_ >= 0) ::close(data_fd_);
  if (ctl_fd_ >= 0) ::close(ctl_fd_);
  if (pid_ > 0 && alive_.load()) {
    // Closing its socket ends it within a moment; no need to wait for that.
    ::kill(-pid_, SIGKILL);
    reap();
  }
  if (stop_word_ != nullptr) ::munmap(stop_word_, 4096);
}

std::string SlotProcess::reap() {
  alive_ = false;
  int status = 0;
  pid_t r;
  do r = ::waitpid(pid_, &status, 0);
  while (r < 0 && errno == EINTR);
  if (r != pid_) return "ended";
  if (WIFSIGNALED(status)) return "crashed with " + sdk::signal_name(WTERMSIG(status));
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

quern_status SlotProcess::execute(const std::string& job_json, plugin::JobSink& sink) {
  stop_word_->store(QUERN_RUNNING);
  // The process ended (end of stream): the job fails naming how, and which
  // job it was (read from the document only now, off the hot path).
  auto died = [&]() {
    const std::string how = reap();
    std::string which;
    auto doc = nlohmann::json::parse(job_json, nullptr, false);
    if (doc.is_object())
      which = " while running job " + std::to_string(doc.value("id", int64_t{0})) + " (attempt " +
              std::to_string(doc.value("attempt", 0)) + ")";
    sink.set_error("plugin '" + plugin_name_ + "' " + (killed_ ? "was killed after ignoring the stop" : how) +
                   which);
    return QUERN_STATUS_FAILURE;
  };
  auto protocol_error = [&](const std::string& what) {
    ::kill(-pid_, SIGKILL);  // never trust this process again
    reap();
    sink.set_error("plugin '" + plugin_name_ + "': slot process protocol error: " + what);
    return QUERN_STATUS_INTERNAL;
  };
  if (!alive_ || !writer_->write('E', job_json)) return died();
  while (true) {
    auto f = read_frame(data_fd_);
    if (!f) return f.code() == StatusCode::unavailable ? died() : protocol_error(f.message());
    const std::string& p = f->payload;
    switch (f->type) {
      case 'L':
        if (p.size() >= 4) {
          int32_t stream = 0;
          std::memcpy(&stream, p.data(), 4);
          sink.log_line(stream, std::string_view(p).substr(4));
        }
        break;
      case 'G':
        if (p.size() == 8) {
          int64_t pgid = 0;
          std::memcpy(&pgid, p.data(), 8);
          sink.set_process_group(pgid);
        }
        break;
      case 'D': {
        if (p.size() < 8) return protocol_error("short 'D' frame");
        int32_t status = 0;
        uint32_t result_size = 0;
        std::memcpy(&status, p.data(), 4);
        std::memcpy(&result_size, p.data() + 4, 4);
        if (8 + static_cast<size_t>(result_size) > p.size()) return protocol_error("bad 'D' frame");
        if (result_size > 0) sink.set_result(std::string_view(p).substr(8, result_size));
        if (p.size() > 8 + result_size) sink.set_error(std::string_view(p).substr(8 + result_size));
        return static_cast<quern_status>(status);
      }
      default:
        break;  // unknown frames are skipped (a newer slot program)
    }
  }
}

Status SlotProcess::ask(char request, char answer, const std::string& payload) {
  if (!alive_ || !writer_->write(request, payload))
    return Status::error("plugin '" + plugin_name_ + "': the slot process " + reap());
  auto f = read_frame(data_fd_);
  if (!f) return Status::error("plugin '" + plugin_name_ + "': the slot process " + reap());
  if (f->type != answer)
    return Status::error("plugin '" + plugin_name_ + "': the slot process answered out of turn");
  return f->payload.empty() ? Status::ok() : Status::error(f->payload);
}

Status SlotProcess::prepare(const std::string& script_json) { return ask('P', 'p', script_json); }

Status SlotProcess::health() { return ask('H', 'h', ""); }

void SlotProcess::stop(int32_t reason) {
  stop_word_->store(reason);
  const char byte = 'I';
  ssize_t ignored = ::send(ctl_fd_, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)ignored;
}

void SlotProcess::kill() {
  if (!alive_.load()) return;
  killed_ = true;
  ::kill(-pid_, SIGKILL);  // the slot process and anything of its group
}

}  // namespace quern::slot
