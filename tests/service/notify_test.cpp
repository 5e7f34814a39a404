// The service manager's notification protocol (host/service/notify.h) as
// systemd speaks it: a Unix datagram socket named by NOTIFY_SOCKET (a path,
// or '@' for the abstract namespace), WATCHDOG_USEC / WATCHDOG_PID; and a
// real `quern worker` under such a listener: READY=1 once it claims,
// WATCHDOG=1 from its heartbeats, STOPPING=1 on SIGTERM, then it stops
// within its shutdown grace and hands its running job back.
#include "host/service/notify.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "host/queue/queue.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A notification socket, as systemd opens one for a Type=notify unit.
class Listener {
 public:
  explicit Listener(const std::string& name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, name.data(), name.size());
    if (name[0] == '@')
      a.sun_path[0] = '\0';
    else
      ::unlink(name.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a),
               static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())) != 0)
      throw std::runtime_error("bind " + name);
    name_ = name;
  }
  ~Listener() {
    ::close(fd_);
    if (name_[0] == '/') ::unlink(name_.c_str());
  }
  // The next datagram, or "" after timeout.
  std::string next(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "";
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }
  // Waits for a datagram containing `what` (collecting all into seen).
  bool wait_for(const std::string& what, std::chrono::milliseconds timeout, std::vector<std::string>& seen) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      std::string m = next(100ms);
      if (m.empty()) continue;
      seen.push_back(m);
      if (m.find(what) != std::string::npos) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
  std::string name_;
};

// Sets an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) { ::setenv(name, value.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

TEST(ServiceNotify, SendsToAPathOrAnAbstractSocketAndNothingWithout) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(service::notify("READY=1"));  // outside systemd: nothing, no error
  const std::string path =
      (fs::temp_directory_path() / ("quern-notify-" + std::to_string(::getpid()))).string();
  {
    Listener l(path);
    ScopedEnv env("NOTIFY_SOCKET", path);
    EXPECT_TRUE(service::notify("READY=1\nSTATUS=serving"));
    EXPECT_EQ(l.next(2s), "READY=1\nSTATUS=serving");
  }
  {
    const std::string abstract = "@quern-notify-test-" + std::to_string(::getpid());
    Listener l(abstract);
    ScopedEnv env("NOTIFY_SOCKET", abstract);
    EXPECT_TRUE(service::notify("WATCHDOG=1"));
    EXPECT_EQ(l.next(2s), "WATCHDOG=1");
  }
  ScopedEnv bad("NOTIFY_SOCKET", "relative/path");
  EXPECT_FALSE(service::notify("READY=1"));
}

TEST(ServiceNotify, TheWatchdogIntervalIsHalfWhatTheManagerAsksAndOnlyForUs) {
  ::unsetenv("WATCHDOG_PID");
  {
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    EXPECT_EQ(service::watchdog_interval(), 15s);
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()));
    EXPECT_EQ(service::watchdog_interval(), 15s);
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1));  // another process's
    EXPECT_EQ(service::watchdog_interval(), 0us);
  }
  for (const char* bad : {"", "abc", "-5", "12x"}) {
    ScopedEnv usec("WATCHDOG_USEC", bad);
    EXPECT_EQ(service::watchdog_interval(), 0us) << bad;
  }
}

TEST(ServiceNotify, AWorkerSaysReadyPingsFromItsHeartbeatsAndStopsWithinItsGraceHandingItsJobBack) {
  const std::string url = testing::fresh_database_url("service_notify");
  const fs::path dir = fs::temp_directory_path() / ("quern-service-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path config = dir / "quern.xml";
  std::ofstream(config)
      << "<quern>\n  <plugins dir=\"" << testing::plugin_dir() << "\"/>\n  <queue poll-interval=\"100ms\"/>\n"
      << "  <workers><group name=\"g\" tags=\"noop\" plugins=\"noop\" sandbox=\"none\"/></workers>\n"
      << "</quern>\n";
  auto q = queue::Queue::connect(url);
  ASSERT_TRUE(q) << q.message();
  queue::NewJob job;
  job.language = "noop";
  job.tag = "noop";
  job.payload["args"] = {{"sleep_ms", 120000}};
  auto id = (*q)->push(job);
  ASSERT_TRUE(id) << id.message();

  const std::string socket = (dir / "notify.sock").string();
  Listener l(socket);
  std::unique_ptr<testing::ChildProcess> w;
  {
    // As systemd starts a Type=notify unit with WatchdogSec=1s.
    ScopedEnv notify("NOTIFY_SOCKET", socket);
    ScopedEnv usec("WATCHDOG_USEC", "1000000");
    w = std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{testing::quern_binary(), "worker", "--config", config.string(), "--group",
                                 "g", "--database-url", url, "--worker-id", "notify-w", "--shutdown-grace",
                                 "1"},
        (dir / "worker.log").string());
  }
  std::vector<std::string> seen;
  ASSERT_TRUE(l.wait_for("READY=1", 30s, seen)) << w->output();
  EXPECT_NE(seen.back().find("STATUS=group g, 4 slots, tags noop"), std::string::npos) << seen.back();
  // Pings every half second (the heartbeat follows the watchdog): three in 5 s.
  int pings = 0;
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (pings < 3 && std::chrono::steady_clock::now() < until)
    if (l.next(200ms) == "WATCHDOG=1") ++pings;
  EXPECT_EQ(pings, 3) << w->output();
  // Its job runs; SIGTERM: STOPPING=1, then it ends within the grace and hands the job back.
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto r = (*q)->get_job(*id);
        return r && *r && (*r)->state == "running";
      },
      30s))
      << w->output();
  const auto stop_at = std::chrono::steady_clock::now();
  w->signal(SIGTERM);
  EXPECT_TRUE(l.wait_for("STOPPING=1", 10s, seen)) << w->output();
  EXPECT_EQ(w->wait_exit(30s), 0) << w->output();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_at, 10s) << "a 1 s shutdown grace took longer";
  auto rec = (*q)->get_job(*id);
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->state, "queued") << "the running job was not handed back";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace quern
