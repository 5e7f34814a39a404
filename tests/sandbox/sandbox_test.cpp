// The job sandbox (host/sandbox/sandbox.h) as a job meets it: a real worker,
// the real bash and python plugins, real bubblewrap. Each escape is tried by
// a job in the sandbox, where it must fail, and by the same job with
// sandbox none, where it must succeed — so no check passes vacuously. And a
// worker asked for a sandbox it cannot build refuses to start, saying why.
#include "host/sandbox/sandbox.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "host/worker/worker.h"
#include "quern/process.hpp"
#include "quern/sandbox.h"
#include "tests/sandbox/run_job.h"
#include "tests/support/child_process.h"
#include "tests/support/test_postgres.h"

namespace quern {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::wait_until;

TEST(SandboxWrapper, BindsTheSystemReadOnlyAndTheWorkdirLast) {
  sandbox::Policy p;
  EXPECT_TRUE(sandbox::wrapper(p).empty());  // none
  EXPECT_EQ(sandbox::describe(p), "none");
  p.mode = sandbox::Mode::bwrap;
  const auto w = sandbox::wrapper(p);
  ASSERT_GE(w.size(), 8u);
  EXPECT_EQ(w.front(), "/usr/bin/bwrap");
  EXPECT_EQ(w.back(), "--");
  const std::string joined = sandbox::encode(w);
  EXPECT_NE(joined.find("--ro-bind\x1f/usr\x1f/usr"), std::string::npos);
  EXPECT_NE(joined.find("--bind\x1f{workdir}\x1f{workdir}\x1f--chdir\x1f{workdir}\x1f--"), std::string::npos);
  EXPECT_EQ(joined.find("--unshare-net"), std::string::npos);
  p.network = sandbox::Network::none;
  EXPECT_NE(sandbox::encode(sandbox::wrapper(p)).find("--unshare-net"), std::string::npos);
  EXPECT_EQ(sandbox::describe(p), "bwrap (network none)");
}

TEST(SandboxSdk, TheWrapperGoesInFrontWithTheWorkdirFilledIn) {
  const char* env[] = {"PATH=/usr/bin", QUERN_SANDBOX_ENV "=w\x1f--bind\x1f{workdir}\x1f{workdir}/x\x1f--",
                       nullptr};
  const char* sandbox = quern_sandbox_find(env);
  ASSERT_NE(sandbox, nullptr);
  const char* argv[] = {"prog", "one", "", nullptr};
  char** out = quern_sandbox_argv(sandbox, "/jobs/7-1", "/usr/bin/prog", argv);
  ASSERT_NE(out, nullptr);
  std::vector<std::string> got;
  for (char** a = out; *a != nullptr; ++a) got.emplace_back(*a);
  std::free(out);
  EXPECT_EQ(got, (std::vector<std::string>{"w", "--bind", "/jobs/7-1", "/jobs/7-1/x", "--", "/usr/bin/prog",
                                           "one", ""}));
  EXPECT_EQ(quern_sandbox_argv(sandbox, "", "/usr/bin/prog", argv), nullptr);  // {workdir} needs one
  const char* none[] = {"PATH=/usr/bin", QUERN_SANDBOX_ENV "=", nullptr};
  EXPECT_EQ(quern_sandbox_find(none), nullptr);
  // The C++ spawn refuses to start a sandboxed child without a working directory.
  sdk::SpawnSpec spec{
      {"true"}, {"PATH=/usr/bin", std::string(QUERN_SANDBOX_ENV "=") + sandbox}, "", {}, false, {}};
  try {
    sdk::spawn(spec, "a sandboxed child");
    ADD_FAILURE() << "spawned without a working directory";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("the sandbox needs a working directory"), std::string::npos)
        << e.what();
  }
}

// A helper the SDK starts with die_with_parent dies with the thread that
// started it, also when QUERN_SETUP switches it to the job user: the kernel
// clears a parent-death signal set before a change of user.
TEST(SandboxSdk, AHelperRunningAsTheJobUserDiesWithTheThreadThatStartedIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, as in CI";
  pid_t pid = -1;
  std::thread([&] {
    sdk::SpawnSpec spec{{"/usr/bin/sleep", "1000"},
                        {"PATH=/usr/bin:/bin", std::string(QUERN_SETUP_ENV "=user=65534:65534")},
                        "/",
                        {},
                        /*die_with_parent=*/true,
                        {}};
    pid = sdk::spawn(spec, "a helper");
  }).join();
  ASSERT_GT(pid, 0);
  int status = 0;
  const bool ended = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 10s);
  if (!ended) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  EXPECT_TRUE(ended) << "the helper outlived the thread that started it";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

TEST(SandboxProbe, SaysWhatIsMissingAndHowToFixIt) {
  sandbox::Policy p;
  p.mode = sandbox::Mode::bwrap;
  EXPECT_TRUE(sandbox::probe(p)) << sandbox::probe(p).message();
  p.bwrap = "/nonexistent/bwrap";
  const Status s = sandbox::probe(p);
  ASSERT_FALSE(s);
  EXPECT_NE(
      s.message().find("the job sandbox needs bubblewrap, but /nonexistent/bwrap is not an executable file"),
      std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("apt-get install bubblewrap"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("sandbox=\"none\""), std::string::npos) << s.message();
}

// A TCP listener on 127.0.0.1 (for the network check); closed at the end.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("listener");
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class SandboxedJobs : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::fresh_database_url("sandbox");
    q_ = std::move(queue::Queue::connect(url_)).value();
    ASSERT_TRUE(registry_.load_file(fs::path(testing::plugin_dir()) / "libquern_bash.so"));
    ASSERT_TRUE(registry_.load_file(fs::path(testing::plugin_dir()) / "libquern_python.so"));
    // Things of the worker's machine a job must not reach.
    dir_ = fs::path(QUERN_BUILD_DIR) / ("test-sandbox-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    secret_ = dir_ / "quern.xml";
    std::ofstream(secret_) << "<quern><database url='postgresql://secret'/></quern>\n";
  }
  void TearDown() override {
    for (pid_t pid : testing::processes_with_marker(marker_)) ::kill(pid, SIGKILL);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<worker::Worker> start_worker(sandbox::Mode mode, sandbox::Network network,
                                               bool announce_none = false) {
    sandbox::Policy p;
    p.mode = mode;
    p.network = network;
    p.announce_none = announce_none;
    return testing::start_confined_worker(url_, registry_, p, 2);
  }

  queue::JobRecord run(const std::string& language, const std::string& code) {
    return testing::run_job(*q_, language, code);
  }

  // What the escape script managed, as words; the same attempts in bash and
  // in Python.
  std::string escapes(const std::string& socket, int port, const std::string& language = "bash") {
    const std::string pid = std::to_string(::getpid());
    const std::string bash =
        "did=''\n"
        "cat '" +
        secret_.string() +
        "' >/dev/null 2>&1 && did=\"$did read-config\"\n"
        "cat /proc/" +
        pid +
        "/environ >/dev/null 2>&1 && did=\"$did read-environ\"\n"
        "kill -0 " +
        pid +
        " 2>/dev/null && did=\"$did signal-worker\"\n"
        "touch '" +
        (dir_ / "written").string() +
        "' 2>/dev/null && did=\"$did write-outside\"\n"
        "test -S '" +
        socket +
        "' && did=\"$did see-database\"\n"
        "(exec 3<>/dev/tcp/127.0.0.1/" +
        std::to_string(port) +
        ") 2>/dev/null && did=\"$did connect\"\n"
        "setsid bash -c 'exec -a " +
        marker_ +
        " sleep 1000' </dev/null >/dev/null 2>&1 &\n"
        // It must have left the job's process group before the job ends.
        "for i in $(seq 100); do pgrep -f " +
        marker_ +
        " >/dev/null && break; sleep 0.05; done\n"
        "echo \"{\\\"did\\\": \\\"${did# }\\\"}\"\n";
    const std::string python =
        "import os, socket, stat, subprocess, time\n"
        "def attempt(did, name, action):\n"
        "    try:\n"
        "        action()\n"
        "        did.append(name)\n"
        "    except Exception:\n"
        "        pass\n"
        "def main():\n"
        "    did = []\n"
        "    attempt(did, 'read-config', lambda: open('" +
        secret_.string() +
        "').read())\n"
        "    attempt(did, 'read-environ', lambda: open('/proc/" +
        pid +
        "/environ', 'rb').read())\n"
        "    attempt(did, 'signal-worker', lambda: os.kill(" +
        pid +
        ", 0))\n"
        "    attempt(did, 'write-outside', lambda: open('" +
        (dir_ / "written").string() +
        "', 'w').write('x'))\n"
        "    if os.path.exists('" +
        socket +
        "'):\n"
        "        did.append('see-database')\n"
        "    attempt(did, 'connect', lambda: socket.create_connection(('127.0.0.1', " +
        std::to_string(port) +
        "), 2).close())\n"
        "    subprocess.Popen(['setsid', 'bash', '-c', 'exec -a " +
        marker_ +
        " sleep 1000'],\n"
        "                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL)\n"
        "    for _ in range(100):\n"
        "        if subprocess.run(['pgrep', '-f', '" +
        marker_ +
        "'], stdout=subprocess.DEVNULL).returncode == 0:\n"
        "            break\n"
        "        time.sleep(0.05)\n"
        "    return {'did': ' '.join(did)}\n";
    const queue::JobRecord rec = run(language, language == "bash" ? bash : python);
    EXPECT_EQ(rec.state, "success") << rec.error;
    return (rec.result.is_object() ? rec.result : nlohmann::json::object()).value("did", "?");
  }

  std::string url_;
  std::unique_ptr<queue::Queue> q_;
  plugin::PluginRegistry registry_;
  fs::path dir_, secret_;
  const std::string marker_ = "quern_sandbox_escapee_" + std::to_string(::getpid());
};

// The embedded cluster's socket, as the URL names it.
std::string database_socket(const std::string& url) {
  const size_t h = url.find("host=") + 5;
  std::string dir = url.substr(h, url.find('&', h) - h);
  const size_t p = url.find("port=") + 5;
  return dir + "/.s.PGSQL." + url.substr(p, url.find('&', p) - p);
}

TEST_F(SandboxedJobs, UnsandboxedJobsReachEverythingTheTestTries) {
  Listener listener;
  auto w = start_worker(sandbox::Mode::none, sandbox::Network::host);
  for (const char* language : {"bash", "python3"}) {
    fs::remove(dir_ / "written");
    EXPECT_EQ(escapes(database_socket(url_), listener.port(), language),
              "read-config read-environ signal-worker write-outside see-database connect")
        << language;
    EXPECT_TRUE(fs::exists(dir_ / "written")) << language;
  }
  // The setsid'd sleep left the job's process group; the job's cgroup (there
  // with or without the sandbox) ends it with the job. Without that cgroup it
  // would outlive its worker: NothingOfAJobOutlivesItsWorkerKilledWithSigkill.
  EXPECT_TRUE(wait_until([&] { return testing::processes_with_marker(marker_).empty(); }, 10s));
  w->stop();
  w->wait();
}

TEST_F(SandboxedJobs, SandboxedJobsReachNoneOfIt) {
  Listener listener;
  auto w = start_worker(sandbox::Mode::bwrap, sandbox::Network::host);
  for (const char* language : {"bash", "python3"}) {
    // network host: only the network
    EXPECT_EQ(escapes(database_socket(url_), listener.port(), language), "connect") << language;
    EXPECT_FALSE(fs::exists(dir_ / "written")) << language;
  }
  // Nothing the job started outlives it, setsid'd or not.
  EXPECT_TRUE(wait_until([&] { return testing::processes_with_marker(marker_).empty(); }, 10s));
  // The job writes in its own directory and private /tmp, as uid 65534.
  const queue::JobRecord rec =
      run("bash",
          "echo hi > out.txt && echo x > /tmp/t && echo \"{\\\"uid\\\": $(id -u), \\\"pid\\\": $$, "
          "\\\"pwd\\\": \\\"$(cat out.txt)\\\"}\"");
  EXPECT_EQ(rec.state, "success") << rec.error;
  const auto result = (rec.result.is_object() ? rec.result : nlohmann::json::object());
  EXPECT_EQ(result.value("uid", -1), 65534);
  // pid 1 of its own pid namespace: the worker's plugins spawn into the warm
  // sandbox (bubblewrap per job would make it pid 2).
  EXPECT_EQ(result.value("pid", -1), 1);
  EXPECT_EQ(result.value("pwd", ""), "hi");
  w->stop();
  w->wait();
}

TEST_F(SandboxedJobs, NetworkNoneBlocksLoopback) {
  Listener listener;
  auto w = start_worker(sandbox::Mode::bwrap, sandbox::Network::none);
  EXPECT_EQ(escapes(database_socket(url_), listener.port()), "");
  EXPECT_EQ(escapes(database_socket(url_), listener.port(), "python3"), "");
  w->stop();
  w->wait();
}

TEST_F(SandboxedJobs, PythonJobsRunSandboxed) {
  auto w = start_worker(sandbox::Mode::bwrap, sandbox::Network::host);
  const std::string probe =
      "import os\ndef main():\n    return {'uid': os.getuid(), 'pid': os.getpid(), 'config': "
      "os.path.exists('" +
      secret_.string() + "')}\n";
  const queue::JobRecord rec = run("python3", probe);
  EXPECT_EQ(rec.state, "success") << rec.error;
  const auto result = (rec.result.is_object() ? rec.result : nlohmann::json::object());
  EXPECT_EQ(result.value("uid", -1), 65534);
  EXPECT_EQ(result.value("pid", -1), 1);  // warm, as bash's
  EXPECT_EQ(result.value("config", true), false);
  w->stop();
  w->wait();
}

// A `quern worker` process (group sandbox as given) running a job that
// left a setsid'd sleep behind, then killed with SIGKILL: is the sleep alive?
bool escapee_outlives_killed_worker(const std::string& sandbox, const std::string& url, const fs::path& dir,
                                    queue::Queue& q, const std::string& marker) {
  const fs::path config = dir / ("worker-" + sandbox + ".xml");
  std::ofstream(config) << "<quern>\n  <plugins dir='" << testing::plugin_dir() << "'/>\n"
                        << "  <queue poll-interval='100ms'/>\n"
                        << "  <workers><group name='g' slots='1' tags='bash' plugins='bash' sandbox='"
                        << sandbox << "'/></workers>\n</quern>\n";
  const std::string id = "escapee-" + sandbox + "-" + std::to_string(::getpid());
  testing::ChildProcess worker({testing::quern_binary(), "worker", "--config", config.string(),
                                "--database-url", url, "--group", "g", "--worker-id", id},
                               (dir / ("worker-" + sandbox + ".log")).string());
  queue::NewJob j;
  j.tag = j.language = "bash";
  j.payload["code"] = "setsid bash -c 'exec -a " + marker +
                      " sleep 1000' </dev/null >/dev/null 2>&1 &\nexec -a " + marker + "_main sleep 1000\n";
  EXPECT_TRUE(q.push(j));
  EXPECT_TRUE(wait_until([&] { return !testing::processes_with_marker(marker).empty(); }, 20s))
      << worker.output();
  worker.signal(SIGKILL);
  worker.wait_exit(10s);
  // Gone within a moment, or still there after it.
  const bool outlives = !wait_until([&] { return testing::processes_with_marker(marker).empty(); }, 5s);
  worker::clean_up_after(id);  // what its parent would do: nothing of it stays on the machine
  return outlives;
}

TEST_F(SandboxedJobs, NothingOfAJobOutlivesItsWorkerKilledWithSigkill) {
  EXPECT_TRUE(escapee_outlives_killed_worker("none", url_, dir_, *q_, marker_));  // what the sandbox prevents
  for (pid_t pid : testing::processes_with_marker(marker_)) ::kill(pid, SIGKILL);
  EXPECT_FALSE(escapee_outlives_killed_worker("bwrap", url_, dir_, *q_, marker_));
}

TEST_F(SandboxedJobs, AJobTheConfigLeftUnsandboxedSaysSoInItsLog) {
  auto w = start_worker(sandbox::Mode::none, sandbox::Network::host, /*announce_none=*/true);
  queue::NewJob j;
  j.tag = j.language = "bash";
  j.payload["code"] = "echo hi";
  const int64_t id = q_->push(j).value();
  ASSERT_TRUE(wait_until([&] { return q_->get_job(id).value()->state == "success"; }, 30s));
  EXPECT_EQ(q_->read_logs(id).value(),
            "[quern] this job runs unsandboxed: worker group default has sandbox=\"none\"\nhi\n");
  w->stop();
  w->wait();
}

TEST(SandboxedWorker, RefusesToStartWithoutTheSandboxItWasAskedFor) {
  plugin::PluginRegistry registry;
  worker::WorkerOptions o;
  o.database_url = testing::fresh_database_url("sandbox_refuse");
  o.tags = {"bash"};
  o.sandbox.mode = sandbox::Mode::bwrap;
  o.sandbox.bwrap = "/nonexistent/bwrap";
  worker::Worker w(o, registry);
  const Status s = w.start();
  ASSERT_FALSE(s);
  EXPECT_NE(
      s.message().find("the job sandbox needs bubblewrap, but /nonexistent/bwrap is not an executable file"),
      std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace quern
