// host/cgroup on this machine's real hierarchies: a process that joins a
// job's cgroup is counted, killed with it, and a leftover is reaped.
#include "host/cgroup/cgroup.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "quern/process.hpp"
#include "quern/sandbox.h"
#include "tests/support/child_process.h"

namespace quern::cgroup {
namespace {

TEST(CgroupFormat, BytesInBinaryUnits) {
  EXPECT_EQ(format_bytes(100), "100 B");
  EXPECT_EQ(format_bytes(512 << 10), "512 KiB");
  EXPECT_EQ(format_bytes(256 << 20), "256 MiB");
  EXPECT_EQ(format_bytes(1536LL << 20), "1.5 GiB");
}

std::string cgroup_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A sleeping child that joined job's cgroups through QUERN_SETUP.
pid_t spawn_in(const Job& job) {
  std::string setup = "core=0";
  for (const std::string& f : job.procs_files())
    setup += std::string(1, QUERN_SANDBOX_SEPARATOR) + "cgroup=" + f;
  sdk::SpawnSpec spec{{"sleep", "1000"},
                      {"PATH=/usr/bin:/bin", std::string(QUERN_SETUP_ENV "=") + setup},
                      "",
                      {0, 1, 2},
                      false,
                      {}};
  return sdk::spawn(spec, "a sleeper");
}

TEST(CgroupJob, AJoinedProcessIsCountedAndKilledWithItsJob) {
  auto tree = Tree::open("cgroup-test-" + std::to_string(::getpid()), {64 << 20, 10, 0});
  ASSERT_TRUE(tree) << tree.message();
  if ((*tree)->describe() == "none") GTEST_SKIP() << "no cgroups on this machine";
  auto job = (*tree)->create("1-1", {64 << 20, 10, 0});
  ASSERT_TRUE(job) << job.message();
  const pid_t pid = spawn_in(*job);
  EXPECT_NE(cgroup_of(pid).find("/quern/cgroup-test-" + std::to_string(::getpid()) + "/1-1"),
            std::string::npos)
      << cgroup_of(pid);
  job->kill();
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  const Usage u = job->usage();
  EXPECT_GT(u.peak_memory_bytes, 0);
  EXPECT_EQ(u.oom_kills, 0);
  EXPECT_TRUE(job->remove());
  for (const std::string& f : job->procs_files()) EXPECT_FALSE(std::filesystem::exists(f)) << f;
}

// Alive, and not a zombie.
bool alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

TEST(CgroupTree, ReapEndsWhatAPreviousWorkerLeft) {
  const std::string id = "cgroup-reap-" + std::to_string(::getpid());
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  // A "worker" that starts a job and dies without cleaning anything up.
  const pid_t worker = ::fork();
  if (worker == 0) {
    auto tree = Tree::open(id, {});
    pid_t sleeper = -1;
    if (tree && (*tree)->describe() != "none") {
      static StatusOr<Job> job = (*tree)->create("7-2", {});  // _exit below: never destroyed
      if (job) sleeper = spawn_in(*job);
    }
    ssize_t n = ::write(p[1], &sleeper, sizeof sleeper);
    (void)n;
    ::_exit(0);
  }
  pid_t sleeper = -1;
  ASSERT_EQ(::read(p[0], &sleeper, sizeof sleeper), static_cast<ssize_t>(sizeof sleeper));
  ::close(p[0]);
  ::close(p[1]);
  ::waitpid(worker, nullptr, 0);
  if (sleeper < 0) GTEST_SKIP() << "no cgroups on this machine";
  EXPECT_TRUE(alive(sleeper)) << "outlives its worker";
  auto successor = Tree::open(id, {});
  ASSERT_TRUE(successor) << successor.message();
  EXPECT_EQ((*successor)->reap(), 1);
  EXPECT_TRUE(testing::wait_until([&] { return !alive(sleeper); }, std::chrono::seconds(10)));
}

TEST(CgroupSetup, UnknownItemsAreRefusedNotIgnored) {
  char good[] =
      "cgroup=/sys/fs/cgroup/x/cgroup.procs\x1fnofile=64\x1f"
      "core=0\x1fuser=65534:65534";
  quern_setup s;
  ASSERT_EQ(quern_setup_parse(good, &s), 0);
  EXPECT_EQ(s.n_cgroups, 1);
  EXPECT_EQ(s.nofile, 64);
  EXPECT_EQ(s.core, 0);
  EXPECT_EQ(s.uid, 65534);
  EXPECT_EQ(s.gid, 65534);
  char bad[] = "memory=1G";
  EXPECT_EQ(quern_setup_parse(bad, &s), -1);
  char bad_user[] = "user=65534";
  EXPECT_EQ(quern_setup_parse(bad_user, &s), -1);
  char relative[] = "cgroup=x/cgroup.procs";
  EXPECT_EQ(quern_setup_parse(relative, &s), -1);
  // The SDK's spawn refuses to start a child it cannot confine as asked.
  sdk::SpawnSpec spec{{"true"}, {"PATH=/usr/bin:/bin", QUERN_SETUP_ENV "=memory=1G"}, "", {0, 1, 2}, false,
                      {}};
  EXPECT_THROW(sdk::spawn(spec, "a child"), std::system_error);
}

}  // namespace
}  // namespace quern::cgroup
