#include "host/sandbox/sandbox.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
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
  w.insert(w.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"});
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
  std::string why;
  try {
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    sdk::SpawnSpec spec{
        {"true"}, {"PATH=/usr/bin:/bin", std::string(QUERN_SANDBOX_ENV "=") + encode(wrapper(policy))},
        dir,      {::open("/dev/null", O_RDONLY | O_CLOEXEC), out, out},
        false,    {}};
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
  if (policy.mode == Mode::none) return "none";
  return std::string("bwrap (network ") + (policy.network == Network::host ? "host" : "none") + ")";
}

}  // namespace quern::sandbox
