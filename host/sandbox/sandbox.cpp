#include "host/sandbox/sandbox.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "quern/process.hpp"
#include "quern/sandbox.h"

namespace fs = std::filesystem;

namespace quern::sandbox {

std::vector<std::string> wrapper(const Policy& policy) {
  if (policy.mode == Mode::none) return {};
  std::vector<std::string> w = {policy.bwrap.string(),
                                "--die-with-parent",
                                "--unshare-user",
                                "--uid",
                                "65534",
                                "--gid",
                                "65534",
                                "--unshare-pid",
                                "--unshare-ipc",
                                "--unshare-uts",
                                "--unshare-cgroup-try",
                                "--hostname",
                                "quern-job"};
  if (policy.network == Network::none) w.push_back("--unshare-net");
  // The system, read-only; on a merged-/usr system /bin, /lib... are links.
  w.insert(w.end(), {"--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"});
  for (const char* top : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    std::error_code ec;
    if (fs::is_symlink(top, ec)) {
      w.insert(w.end(), {"--symlink", fs::read_symlink(top, ec).string(), top});
    } else if (fs::is_directory(top, ec)) {
      w.insert(w.end(), {"--ro-bind", top, top});
    }
  }
  // /etc/resolv.conf may point there (systemd-resolved).
  w.insert(w.end(), {"--ro-bind-try", "/run/systemd/resolve", "/run/systemd/resolve"});
  w.insert(w.end(), {"--proc", "/proc", "--dev", "/dev"});
  if (policy.tmp_size > 0) w.insert(w.end(), {"--size", std::to_string(policy.tmp_size)});
  w.insert(w.end(), {"--tmpfs", "/tmp"});
  // NVIDIA's device nodes, for GPU jobs (which devices a job may use is
  // CUDA_VISIBLE_DEVICES, set by the gpu plugin).
  std::error_code ec;
  std::vector<std::string> gpus;
  for (const auto& e : fs::directory_iterator("/dev", ec))
    if (e.path().filename().string().rfind("nvidia", 0) == 0) gpus.push_back(e.path().string());
  std::sort(gpus.begin(), gpus.end());
  for (const std::string& node : gpus) w.insert(w.end(), {"--dev-bind", node, node});
  // The job's directory last: it may lie under /tmp.
  w.insert(w.end(),
           {"--bind", QUERN_SANDBOX_WORKDIR, QUERN_SANDBOX_WORKDIR, "--chdir", QUERN_SANDBOX_WORKDIR, "--"});
  return w;
}

Status resolve_job_user(Policy& policy) {
  policy.uid = policy.gid = -1;
  if (policy.mode == Mode::none || ::geteuid() != 0) return Status::ok();
  const std::string& u = policy.job_user;
  struct passwd pw_buf;
  struct passwd* pw = nullptr;
  std::vector<char> buf(16384);
  const bool numeric =
      !u.empty() && std::all_of(u.begin(), u.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (numeric) {
    ::getpwuid_r(static_cast<uid_t>(std::stoul(u)), &pw_buf, buf.data(), buf.size(), &pw);
    policy.uid = std::stoll(u);
    policy.gid = pw != nullptr ? pw->pw_gid : policy.uid;
  } else {
    ::getpwnam_r(u.c_str(), &pw_buf, buf.data(), buf.size(), &pw);
    if (pw == nullptr)
      return Status::error("job-user \"" + u +
                           "\" does not exist on this machine: create it (useradd --system " + u +
                           ") or name another user on the group");
    policy.uid = pw->pw_uid;
    policy.gid = pw->pw_gid;
  }
  if (policy.uid == 0) return Status::error("job-user \"" + u + "\" is root: jobs never run as root");
  return Status::ok();
}

std::string setup_items(const Policy& policy) {
  std::string out = "core=0";
  if (policy.nofile > 0)
    out += std::string(1, QUERN_SANDBOX_SEPARATOR) + "nofile=" + std::to_string(policy.nofile);
  if (policy.uid >= 0)
    out += std::string(1, QUERN_SANDBOX_SEPARATOR) + "user=" + std::to_string(policy.uid) + ":" +
           std::to_string(policy.gid);
  return out;
}

std::string encode(const std::vector<std::string>& wrapper) {
  std::string out;
  for (const std::string& a : wrapper) {
    if (!out.empty()) out += QUERN_SANDBOX_SEPARATOR;
    out += a;
  }
  return out;
}

Status probe(const Policy& policy) {
  if (policy.mode == Mode::none) return Status::ok();
  const std::string fix =
      " (install bubblewrap: apt-get install bubblewrap; allow user namespaces: sysctl "
      "kernel.unprivileged_userns_clone=1 where that knob exists; or set sandbox=\"none\" on the group "
      "to run jobs unsandboxed)";
  if (::access(policy.bwrap.c_str(), X_OK) != 0)
    return Status::error("the job sandbox needs bubblewrap, but " + policy.bwrap.string() +
                         " is not an executable file" + fix);
  char dir[] = "/tmp/quern-sandbox-probe-XXXXXX";
  if (::mkdtemp(dir) == nullptr)
    return Status::error("the job sandbox probe: cannot create a directory in /tmp");
  const std::string log = std::string(dir) + ".log";
  if (policy.uid >= 0 && ::chown(dir, static_cast<uid_t>(policy.uid), static_cast<gid_t>(policy.gid)) != 0) {
    ::rmdir(dir);
    return Status::error(std::string("the job sandbox probe: cannot hand ") + dir + " to uid " +
                         std::to_string(policy.uid) + ": " + std::strerror(errno));
  }
  std::string why;
  try {
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    sdk::SpawnSpec spec{{"true"},
                        {"PATH=/usr/bin:/bin", std::string(QUERN_SANDBOX_ENV "=") + encode(wrapper(policy)),
                         std::string(QUERN_SETUP_ENV "=") + setup_items(policy)},
                        dir,
                        {::open("/dev/null", O_RDONLY | O_CLOEXEC), out, out},
                        false,
                        {}};
    const pid_t pid = sdk::spawn(spec, "the sandbox probe");
    for (int fd : spec.fds) ::close(fd);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::ifstream in(log);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
      why =
          "bubblewrap could not build the job sandbox: " + (text.empty() ? std::string("no message") : text);
    }
  } catch (const std::exception& e) {
    why = std::string("the job sandbox probe failed: ") + e.what();
  }
  ::unlink(log.c_str());
  ::rmdir(dir);
  return why.empty() ? Status::ok() : Status::error(why + fix);
}

std::string describe(const Policy& policy) {
  std::string out = policy.mode == Mode::none ? std::string("none")
                                              : std::string("bwrap (network ") +
                                                    (policy.network == Network::host ? "host" : "none") + ")";
  const cgroup::Limits& l = policy.limits;
  if (l.memory_max > 0) out += ", memory-max " + cgroup::format_bytes(l.memory_max);
  if (l.pids_max > 0) out += ", pids-max " + std::to_string(l.pids_max);
  if (l.cpu_max_milli > 0) {
    std::string cpus = std::to_string(l.cpu_max_milli / 1000);
    if (l.cpu_max_milli % 1000 != 0) {
      std::string frac = std::to_string(1000 + l.cpu_max_milli % 1000).substr(1);
      while (frac.back() == '0') frac.pop_back();
      cpus += "." + frac;
    }
    out += ", cpu-max " + cpus;
  }
  if (policy.tmp_size > 0 && policy.mode != Mode::none)
    out += ", tmp-size " + cgroup::format_bytes(policy.tmp_size);
  if (policy.nofile > 0) out += ", nofile " + std::to_string(policy.nofile);
  if (policy.uid >= 0) out += ", jobs as uid " + std::to_string(policy.uid);
  return out;
}

}  // namespace quern::sandbox
