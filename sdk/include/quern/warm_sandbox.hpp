// Header-only C++17 (Linux), included by quern/process.hpp: the job sandbox
// kept warm, so that a sandboxed spawn costs a few system calls instead of
// a whole bubblewrap run. Behaviour, not contract (see process.hpp).
//
// Why. Building the sandbox with bubblewrap for every job costs ~10 ms on a
// small machine (docs/BENCHMARKS.md): a user namespace, a tmpfs root, a
// dozen bind mounts, pivot_root, a monitor process. A warm sandbox pays it
// once per (wrapper, jobs directory, job user) in each process that spawns:
// bubblewrap builds the sandbox around a short-lived holder process, whose
// user, mount and (network="none") network namespaces are kept open by fd
// after it exits. Each job's process then enters those namespaces and gets
// its own on top, before exec:
//   - a new pid namespace, in which it is pid 1: when it ends, the kernel
//     kills everything it left (setsid'd or not), as bubblewrap's did;
//   - a new mount namespace copied from the warm one, in which "/" and /dev
//     are read-only (they are shared by the jobs of this process), /tmp and
//     /dev/shm are fresh tmpfs, /proc is its own pid namespace's (/proc/sys
//     and friends read-only, as bubblewrap does), and the jobs directory is an
//     empty tmpfs holding only its own working directory;
//   - new ipc, uts (the wrapper's hostname) and cgroup namespaces;
//   - the wrapper's user namespace and user (uid/gid 65534 inside), no new
//     privileges, and no capabilities once it execs.
// The job's process is still a child of the spawning process (CLONE_PARENT),
// so waitpid, pidfds and process-group signals work as for any child.
//
// A warm sandbox that cannot be built, or a spawn that fails in a warm step,
// falls back to bubblewrap per spawn (slower, never weaker); three failures
// in a row for one key make it cold for the process's life.
// QUERN_SANDBOX_COLD=1 in the spawning process's environment turns warm
// sandboxes off (for comparison, and as an escape hatch).
//
// Thread-safety: the cache of warm sandboxes is guarded by its own mutex;
// warm_sandbox_for() may be called from any thread. A WarmSandbox's fds are
// read-only after it is built and live as long as any shared_ptr to it.
#ifndef QUERN_WARM_SANDBOX_HPP
#define QUERN_WARM_SANDBOX_HPP

#if defined(__linux__)
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#endif
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "quern/sandbox.h"

// The new mount API (Linux 5.2); older headers may lack the numbers.
#if defined(__linux__) && defined(SYS_open_tree) && defined(SYS_move_mount)
#define QUERN_WARM_SANDBOX_SUPPORTED 1
#else
#define QUERN_WARM_SANDBOX_SUPPORTED 0
#endif

namespace quern::sdk {

inline pid_t spawn(const SpawnSpec& spec, std::string_view what);

namespace detail {

// Steps of a warm spawn's child, as reported to the parent (process.hpp's
// other steps are below 30).
enum WarmStep : int {
  kWarmEnter = 30,    // setns into the warm namespaces
  kWarmUnshare = 31,  // the job's own namespaces
  kWarmMounts = 32,   // "/" and /dev read-only, /tmp, /dev/shm, the working directory
  kWarmClone = 33,    // starting the job's process in its pid namespace
  kWarmProc = 34,     // the job's /proc
  kWarmUser = 35,     // the job's user and user namespace
  kWarmPid = 100,     // not a failure: the job's process is this pid
};

inline const char* warm_step_name(int step) {
  switch (step) {
    case kWarmEnter:
      return "entering the warm sandbox's namespaces";
    case kWarmUnshare:
      return "creating the job's namespaces";
    case kWarmMounts:
      return "setting up the job's mounts";
    case kWarmClone:
      return "starting the job's process in its pid namespace";
    case kWarmProc:
      return "mounting the job's /proc";
    default:
      return "entering the sandbox's user namespace";
  }
}

// One sandbox kept warm: fds of the namespaces a job's process enters.
class WarmSandbox {
 public:
  WarmSandbox() = default;
  WarmSandbox(const WarmSandbox&) = delete;
  WarmSandbox& operator=(const WarmSandbox&) = delete;
  ~WarmSandbox() {
    for (int fd : {user_fd, owner_fd, mnt_fd, net_fd})
      if (fd >= 0) ::close(fd);
  }

  int user_fd = -1;   // the user namespace the job's process ends in
  int owner_fd = -1;  // the one owning mnt_fd when it differs from user_fd; else -1
  int mnt_fd = -1;
  int net_fd = -1;  // -1: the host's network
  std::string hostname = "quern-job";
  std::string tmp_data = "mode=1777";  // mount data of the job's /tmp
  std::string jobs_dir;
  std::vector<std::string> jobs_dir_prefixes;  // "/a", "/a/b", ..., jobs_dir
  // The jobs directory the sandbox binds: one made anew since (a worker's
  // restart) is not in it, so the sandbox is built again.
  dev_t jobs_dev = 0;
  ino_t jobs_ino = 0;
  std::string key;  // its entry in WarmSandboxes
};

// What the child of a warm spawn needs, prepared by the parent (the child
// only reads it).
struct WarmPlan {
  const WarmSandbox* sandbox;
  bool as_root;              // enter the mount namespace with init-namespace privileges
  const quern_setup* outer;  // cgroups and rlimits, applied before entering
  const quern_setup*
      inner;  // the job's user only, switched to by the job's process before its user namespace
  const char* workdir;
  const char* const* jobs_dir_prefixes;  // NULL-terminated
  void* stack;                           // for the job's process (vfork-style start)
  std::size_t stack_size;
};

#if QUERN_WARM_SANDBOX_SUPPORTED

inline bool same_namespace(int a, int b) {
  struct stat sa, sb;
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

// Remounts path read-only, keeping its other flags (a mount copied from a
// namespace owned by another user namespace has them locked).
inline int remount_read_only(const char* path) noexcept {
  struct statvfs v;
  if (::statvfs(path, &v) != 0) return -1;
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
  if (v.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (v.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (v.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (v.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (v.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (v.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return ::mount(nullptr, path, nullptr, flags, nullptr);
}

// The job's mounts, in its new mount namespace (see the top of this file).
// 0, or -1 with errno.
inline int warm_mounts(const WarmPlan& w) noexcept {
  const WarmSandbox& s = *w.sandbox;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return -1;
  // The working directory, taken before the jobs directory is covered.
  const int tree = static_cast<int>(::syscall(
      SYS_open_tree, AT_FDCWD, w.workdir, 1 /* OPEN_TREE_CLONE */ | O_CLOEXEC | 0x8000 /* AT_RECURSIVE */));
  if (tree < 0) return -1;
  int rc = -1;
  do {
    if (remount_read_only("/") != 0 || remount_read_only("/dev") != 0) break;
    if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, s.tmp_data.c_str()) != 0) break;
    if (::access("/dev/shm", F_OK) == 0 &&
        ::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0)
      break;
    // The jobs directory may lie under /tmp, now empty: make its path again.
    for (const char* const* p = w.jobs_dir_prefixes; *p != nullptr; ++p) ::mkdir(*p, 0755);
    if (::mount("tmpfs", s.jobs_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") != 0) break;
    if (::mkdir(w.workdir, 0700) != 0) break;
    if (::syscall(SYS_move_mount, tree, "", AT_FDCWD, w.workdir, 4 /* MOVE_MOUNT_F_EMPTY_PATH */) != 0) break;
    rc = 0;
  } while (false);
  const int err = errno;
  ::close(tree);
  errno = err;
  return rc;
}

// The job's /proc, by its pid-1 process (a proc mount shows the mounter's
// pid namespace), with what bubblewrap makes read-only read-only.
inline int warm_proc() noexcept {
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) return -1;
  for (const char* p : {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"}) {
    if (::mount(p, p, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      if (errno == ENOENT) continue;
      return -1;
    }
    if (remount_read_only(p) != 0) return -1;
  }
  return 0;
}

#endif  // QUERN_WARM_SANDBOX_SUPPORTED

// Whether warm sandboxes are off in this process (QUERN_SANDBOX_COLD).
inline bool warm_sandbox_disabled() {
  const char* v = ::getenv("QUERN_SANDBOX_COLD");
  return v != nullptr && *v != '\0' && std::string_view(v) != "0";
}

// Reads from fd until `until` returns true for what was read, EOF, or the
// deadline. Returns what was read.
inline std::string read_until(int fd, std::chrono::steady_clock::time_point deadline,
                              bool (*until)(const std::string&)) {
  std::string text;
  char buf[512];
  while (!until(text)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
            .count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  return text;
}

// Builds a warm sandbox: bubblewrap with `sandbox` (QUERN_SANDBOX's value,
// {workdir} = jobs_dir) around `sh` waiting on its stdin, as the job user
// (user_item: QUERN_SETUP's "user=uid:gid", or empty), then keeps its
// namespaces. Null when anything fails: the caller spawns cold.
inline std::shared_ptr<WarmSandbox> build_warm_sandbox(const std::string& sandbox,
                                                       const std::string& jobs_dir,
                                                       const std::string& user_item) {
#if QUERN_WARM_SANDBOX_SUPPORTED
  auto w = std::make_shared<WarmSandbox>();
  w->jobs_dir = jobs_dir;
  struct stat st;
  if (::stat(jobs_dir.c_str(), &st) != 0) return nullptr;
  w->jobs_dev = st.st_dev;
  w->jobs_ino = st.st_ino;
  for (std::size_t slash = jobs_dir.find('/', 1);; slash = jobs_dir.find('/', slash + 1)) {
    w->jobs_dir_prefixes.push_back(jobs_dir.substr(0, slash));
    if (slash == std::string::npos) break;
  }
  // The wrapper's arguments, with the holder after "--".
  const char* holder_argv[] = {"sh", "-c", "echo ready; read _", nullptr};
  std::unique_ptr<char*, decltype(&std::free)> wrapped(
      quern_sandbox_argv(sandbox.c_str(), jobs_dir.c_str(), "/bin/sh", holder_argv), &std::free);
  if (!wrapped) return nullptr;
  std::vector<std::string> argv;
  for (char** a = wrapped.get(); *a != nullptr; ++a) argv.emplace_back(*a);
  std::string tmp_size;
  for (std::size_t i = 0; i + 1 < argv.size() && argv[i] != "--"; ++i) {
    if (argv[i] == "--hostname") w->hostname = argv[i + 1];
    if (argv[i] == "--size") tmp_size = argv[i + 1];
    if (argv[i] == "--tmpfs" && argv[i + 1] == "/tmp" && !tmp_size.empty())
      w->tmp_data = "mode=1777,size=" + tmp_size;
  }
  argv.insert(argv.begin() + 1, {"--as-pid-1", "--info-fd", "3"});

  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return nullptr;
  Fd in_r(p[0]), in_w(p[1]);
  if (::pipe2(p, O_CLOEXEC) != 0) return nullptr;
  Fd out_r(p[0]), out_w(p[1]);
  if (::pipe2(p, O_CLOEXEC) != 0) return nullptr;
  Fd info_r(p[0]), info_w(p[1]);
  Fd null_fd(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  if (null_fd.get() < 0) return nullptr;
  std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
  if (!user_item.empty()) env.push_back(std::string(QUERN_SETUP_ENV "=") + user_item);
  SpawnSpec spec;
  spec.argv = argv;
  spec.env = env;
  spec.workdir = "/";  // bubblewrap changes to jobs_dir inside
  spec.fds = {in_r.get(), out_w.get(), null_fd.get(), info_w.get()};
  spec.die_with_parent = true;
  pid_t pid;
  try {
    pid = spawn(spec, "the warm sandbox");
  } catch (const std::exception&) {
    return nullptr;
  }
  in_r.reset();
  out_w.reset();
  info_w.reset();
  null_fd.reset();

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // bubblewrap's info: {"child-pid": N, ...}, written once the holder exists.
  const std::string info = read_until(info_r.get(), deadline,
                                      [](const std::string& t) { return t.find('}') != std::string::npos; });
  const std::string ready = read_until(
      out_r.get(), deadline, [](const std::string& t) { return t.find('\n') != std::string::npos; });
  long child = -1;
  if (auto at = info.find("\"child-pid\""); at != std::string::npos) {
    at = info.find(':', at);
    if (at != std::string::npos) child = std::strtol(info.c_str() + at + 1, nullptr, 10);
  }
  bool ok = child > 0 && ready == "ready\n";
  if (ok) {
    const std::string ns = "/proc/" + std::to_string(child) + "/ns/";
    w->user_fd = ::open((ns + "user").c_str(), O_RDONLY | O_CLOEXEC);
    w->mnt_fd = ::open((ns + "mnt").c_str(), O_RDONLY | O_CLOEXEC);
    w->net_fd = ::open((ns + "net").c_str(), O_RDONLY | O_CLOEXEC);
    ok = w->user_fd >= 0 && w->mnt_fd >= 0 && w->net_fd >= 0;
  }
  // The holder ends when its stdin does, and bubblewrap with it.
  in_w.reset();
  int status = 0;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) break;
    if (std::chrono::steady_clock::now() >= until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ok = false;
      break;
    }
    ::poll(nullptr, 0, 2);
  }
  if (!ok) return nullptr;
  // The host's network unless the wrapper unshared it.
  Fd own_net(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (own_net.get() >= 0 && same_namespace(own_net.get(), w->net_fd)) {
    ::close(w->net_fd);
    w->net_fd = -1;
  }
  // bubblewrap may set the mounts up in one user namespace and end in a
  // child of it: entering the mount namespace needs its owner.
  const int owner = ::ioctl(w->mnt_fd, NS_GET_USERNS);
  if (owner < 0) return nullptr;
  ::fcntl(owner, F_SETFD, FD_CLOEXEC);
  if (same_namespace(owner, w->user_fd))
    ::close(owner);
  else
    w->owner_fd = owner;
  return w;
#else
  (void)sandbox;
  (void)jobs_dir;
  (void)user_item;
  return nullptr;
#endif
}

// The process-wide cache of warm sandboxes.
class WarmSandboxes {
 public:
  static WarmSandboxes& instance() {
    // Destroyed when the plugin is unloaded (or at exit), closing its fds.
    static WarmSandboxes cache;
    return cache;
  }

  // The warm sandbox for a spawn with this wrapper, working directory and
  // job user, built on first use; null when the spawn must go cold.
  std::shared_ptr<WarmSandbox> get(const std::string& sandbox, const std::string& workdir,
                                   const std::string& user_item) {
    if (warm_sandbox_disabled() || workdir.size() < 2 || workdir[0] != '/') return nullptr;
    std::string dir = workdir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    const std::size_t slash = dir.rfind('/');
    if (slash == 0 || slash == std::string::npos) return nullptr;  // no jobs directory to hide
    const std::string jobs_dir = dir.substr(0, slash);
    const std::string key = sandbox + '\n' + jobs_dir + '\n' + user_item;
    struct stat st;
    if (::stat(jobs_dir.c_str(), &st) != 0) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = entries_[key];
    if (e.failures >= kMaxFailures) return nullptr;
    if (e.sandbox && (e.sandbox->jobs_dev != st.st_dev || e.sandbox->jobs_ino != st.st_ino))
      e.sandbox.reset();
    if (!e.sandbox) {
      if (entries_.size() > kMaxEntries) {
        entries_.erase(key);
        return nullptr;
      }
      e.sandbox = build_warm_sandbox(sandbox, jobs_dir, user_item);
      if (e.sandbox)
        e.sandbox->key = key;
      else
        ++e.failures;
    }
    return e.sandbox;
  }

  // A spawn through `s` failed in a warm step: rebuild it next time, and
  // give up on its key after kMaxFailures in a row.
  void failed(const std::shared_ptr<WarmSandbox>& s) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(s->key);
    if (it == entries_.end() || it->second.sandbox != s) return;  // already rebuilt by another spawn
    it->second.sandbox.reset();
    ++it->second.failures;
  }

  // A spawn through `s` worked.
  void succeeded(const std::shared_ptr<WarmSandbox>& s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = entries_.find(s->key); it != entries_.end() && it->second.sandbox == s)
      it->second.failures = 0;
  }

 private:
  static constexpr int kMaxFailures = 3;
  static constexpr std::size_t kMaxEntries = 16;
  struct Entry {
    std::shared_ptr<WarmSandbox> sandbox;
    int failures = 0;
  };
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace detail
}  // namespace quern::sdk

#endif  // QUERN_WARM_SANDBOX_HPP
