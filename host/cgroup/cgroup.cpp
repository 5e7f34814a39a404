#include "host/cgroup/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "quern/spawn.hpp"

namespace fs = std::filesystem;

namespace quern::cgroup {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// write(2) of the whole text: cgroup files take one value per write.
Status write_text(const fs::path& file, const std::string& text) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Status::error("cannot open " + file.string() + ": " + std::strerror(errno));
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    return Status::error("cannot write '" + text + "' to " + file.string() + ": " + std::strerror(err));
  return Status::ok();
}

// The number after `key ` in a flat-keyed file (memory.events, cpu.stat, ...).
int64_t keyed_value(const fs::path& file, const std::string& key) {
  std::istringstream in(read_text(file));
  std::string k;
  int64_t v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return -1;
}

int64_t number_in(const fs::path& file) {
  const std::string text = read_text(file);
  if (text.empty() || text[0] < '0' || text[0] > '9') return -1;
  return std::stoll(text);
}

struct Mounts {
  fs::path v2;                         // the unified hierarchy's mount point; empty = none
  std::map<std::string, fs::path> v1;  // controller → mount point
};

// /proc/self/mountinfo: "id parent maj:min root mountpoint opts ... - fstype source superopts".
Mounts find_mounts() {
  Mounts m;
  std::istringstream in(read_text("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point;
    f >> id >> parent >> dev >> root >> point;
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string type, source, opts;
    tail >> type >> source >> opts;
    if (type == "cgroup2") {
      if (m.v2.empty()) m.v2 = point;
    } else if (type == "cgroup") {
      std::istringstream o(opts);
      for (std::string opt; std::getline(o, opt, ',');)
        if (opt == "memory" || opt == "pids" || opt == "cpu" || opt == "cpuacct")
          if (!m.v1.count(opt)) m.v1[opt] = point;
    }
  }
  return m;
}

// This process's cgroup in each hierarchy: "" → v2 path, controller → v1 path.
std::map<std::string, std::string> own_cgroups() {
  std::map<std::string, std::string> out;
  std::istringstream in(read_text("/proc/self/cgroup"));
  for (std::string line; std::getline(in, line);) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) {
      out[""] = path;
      continue;
    }
    std::istringstream c(controllers);
    for (std::string name; std::getline(c, name, ',');) out[name] = path;
  }
  return out;
}

fs::path under(const fs::path& mount, const std::string& path) {
  return path.empty() || path == "/" ? mount : mount / path.substr(1);
}

bool writable_dir(const fs::path& dir) { return ::access(dir.c_str(), W_OK) == 0; }

std::string safe_name(const std::string& id) {
  std::string s = id;
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  return s;
}

Status make_dir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return Status::ok();
  return Status::error("cannot create the cgroup " + dir.string() + ": " + std::strerror(errno));
}

std::set<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::set<std::string> out;
  for (std::string w; in >> w;) out.insert(w);
  return out;
}

// On v2, `dir` passes `controllers` to its children. A cgroup with processes
// cannot (the "no internal processes" rule): they move to dir/quern.supervisor.
Status delegate_v2(const fs::path& dir, const std::vector<std::string>& controllers) {
  if (controllers.empty()) return Status::ok();
  const std::set<std::string> on = words(read_text(dir / "cgroup.subtree_control"));
  std::string want;
  for (const std::string& c : controllers)
    if (!on.count(c)) want += (want.empty() ? "+" : " +") + c;
  if (want.empty()) return Status::ok();
  if (write_text(dir / "cgroup.subtree_control", want)) return Status::ok();
  const fs::path supervisor = dir / "quern.supervisor";
  if (Status s = make_dir(supervisor); !s) return s;
  std::istringstream procs(read_text(dir / "cgroup.procs"));
  for (std::string pid; procs >> pid;) (void)write_text(supervisor / "cgroup.procs", pid);
  if (Status s = write_text(dir / "cgroup.subtree_control", want); !s)
    return Status::error("cannot give the " + want + " controllers to job cgroups under " + dir.string() +
                         " (" + s.message() + ")");
  return Status::ok();
}

void kill_listed(const fs::path& dir) {
  const auto deadline = SteadyClock::now() + std::chrono::seconds(1);
  while (SteadyClock::now() < deadline) {
    std::istringstream in(read_text(dir / "cgroup.procs"));
    bool any = false;
    for (pid_t pid; in >> pid;) {
      ::kill(pid, SIGKILL);
      any = true;
    }
    if (!any) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling the kernel's list, bounded
  }
}

}  // namespace

std::string format_bytes(int64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  std::ostringstream out;
  if (u == 0 || v == static_cast<int64_t>(v))
    out << static_cast<int64_t>(v) << ' ' << units[u];
  else
    out << std::fixed << std::setprecision(1) << v << ' ' << units[u];
  return out.str();
}

// --- Job ---------------------------------------------------------------------

Job::~Job() {
  if (dirs_.empty()) return;
  kill();
  remove();
}

Job::Job(Job&& other) noexcept { *this = std::move(other); }

Job& Job::operator=(Job&& other) noexcept {
  if (this != &other) {
    if (!dirs_.empty()) {
      kill();
      remove();
    }
    dirs_ = std::move(other.dirs_);
    v2_ = std::move(other.v2_);
    memory_v1_ = std::move(other.memory_v1_);
    pids_v1_ = std::move(other.pids_v1_);
    cpuacct_v1_ = std::move(other.cpuacct_v1_);
    other.dirs_.clear();
  }
  return *this;
}

std::vector<std::string> Job::procs_files() const {
  std::vector<std::string> out;
  for (const fs::path& d : dirs_) out.push_back((d / "cgroup.procs").string());
  return out;
}

void Job::kill() {
  if (!v2_.empty() && fs::exists(v2_ / "cgroup.kill")) {
    (void)write_text(v2_ / "cgroup.kill", "1");
    return;
  }
  for (const fs::path& d : dirs_) kill_listed(d);
}

void Job::signal(int sig, const std::string& except) const {
  if (dirs_.empty()) return;
  std::istringstream in(read_text(dirs_.front() / "cgroup.procs"));
  for (pid_t pid; in >> pid;) {
    std::string comm = read_text("/proc/" + std::to_string(pid) + "/comm");
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm != except) sdk::stop_signal(pid, sig);
  }
}

Usage Job::usage() const {
  Usage u;
  if (!v2_.empty()) {
    u.cpu_us = keyed_value(v2_ / "cpu.stat", "usage_usec");
    if (fs::exists(v2_ / "memory.peak")) u.peak_memory_bytes = number_in(v2_ / "memory.peak");
    if (fs::exists(v2_ / "memory.events"))
      u.oom_kills = std::max<int64_t>(0, keyed_value(v2_ / "memory.events", "oom_kill"));
  }
  if (!memory_v1_.empty()) {
    u.peak_memory_bytes = number_in(memory_v1_ / "memory.max_usage_in_bytes");
    u.oom_kills = std::max<int64_t>(0, keyed_value(memory_v1_ / "memory.oom_control", "oom_kill"));
  }
  if (u.cpu_us < 0 && !cpuacct_v1_.empty()) {
    const int64_t ns = number_in(cpuacct_v1_ / "cpuacct.usage");
    if (ns >= 0) u.cpu_us = ns / 1000;
  }
  return u;
}

Usage used_between(const Usage& before, const Usage& after) {
  Usage u;
  u.peak_memory_bytes = after.peak_memory_bytes;
  if (before.cpu_us >= 0 && after.cpu_us >= 0) u.cpu_us = after.cpu_us - before.cpu_us;
  u.oom_kills = std::max<int64_t>(0, after.oom_kills - before.oom_kills);
  return u;
}

void Job::reset_peak() const {
  if (!memory_v1_.empty()) (void)write_text(memory_v1_ / "memory.max_usage_in_bytes", "0");
}

bool Job::remove(std::chrono::milliseconds wait) {
  const auto deadline = SteadyClock::now() + wait;
  bool all = true;
  for (const fs::path& d : dirs_) {
    // Killed processes leave their cgroup as they exit: moments, not seconds.
    while (::rmdir(d.c_str()) != 0 && errno == EBUSY) {
      if (SteadyClock::now() >= deadline) {
        all = false;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  dirs_.clear();
  return all;
}

// --- Tree --------------------------------------------------------------------

StatusOr<std::unique_ptr<Tree>> Tree::open(const std::string& worker_id, const Limits& limits) {
  std::unique_ptr<Tree> t(new Tree());
  const Mounts mounts = find_mounts();
  const auto own = own_cgroups();
  const std::string name = safe_name(worker_id);
  std::vector<std::string> need;
  if (limits.memory_max > 0) need.push_back("memory");
  if (limits.pids_max > 0) need.push_back("pids");
  if (limits.cpu_max_milli > 0) need.push_back("cpu");

  // v2: usable when mounted, writable, and (for each limit) given the controller.
  fs::path v2_base;
  std::set<std::string> v2_has;
  if (!mounts.v2.empty() && own.count("")) {
    v2_base = under(mounts.v2, own.at(""));
    // A worker that moved itself into quern.supervisor earlier (quern up
    // runs several workers in one process) keeps using the same base.
    if (v2_base.filename() == "quern.supervisor") v2_base = v2_base.parent_path();
    if (writable_dir(v2_base))
      v2_has = words(read_text(v2_base / "cgroup.controllers"));
    else
      v2_base.clear();
  }
  std::vector<std::string> v2_controllers;
  for (const char* c : {"memory", "pids", "cpu"})
    if (v2_has.count(c)) v2_controllers.push_back(c);
  t->v2_memory_ = v2_has.count("memory") > 0;
  t->v2_pids_ = v2_has.count("pids") > 0;
  t->v2_cpu_ = v2_has.count("cpu") > 0;

  auto v1_dir = [&](const std::string& controller) -> fs::path {
    auto m = mounts.v1.find(controller);
    if (m == mounts.v1.end() || !own.count(controller)) return {};
    fs::path base = under(m->second, own.at(controller));
    return writable_dir(base) ? base : fs::path();
  };
  std::vector<std::string> missing;
  std::string v1_used;
  auto pick_v1 = [&](const std::string& controller, bool on_v2, bool needed, fs::path& out) {
    if (on_v2) return;
    fs::path base = v1_dir(controller);
    if (base.empty()) {
      if (needed) missing.push_back(controller);
      return;
    }
    out = base;
    v1_used += (v1_used.empty() ? "" : ",") + controller;
  };
  const bool needs_memory = limits.memory_max > 0, needs_pids = limits.pids_max > 0,
             needs_cpu = limits.cpu_max_milli > 0;
  fs::path memory_base, pids_base, cpu_base, cpuacct_base;
  // memory is used even without a limit: it gives the peak on the record.
  pick_v1("memory", t->v2_memory_, needs_memory, memory_base);
  pick_v1("pids", t->v2_pids_, needs_pids, pids_base);
  // cpu too when available: a script may ask for a cpu limit of its own.
  pick_v1("cpu", t->v2_cpu_, needs_cpu, cpu_base);
  if (v2_base.empty()) pick_v1("cpuacct", false, false, cpuacct_base);
  if (!missing.empty()) {
    std::string list;
    for (const std::string& c : missing) list += (list.empty() ? "" : ", ") + c;
    return Status::error("the group's limits need the cgroup controller(s) " + list +
                         ", which this machine does not give this worker (cgroup v2: run the worker in a "
                         "cgroup delegated to it, "
                         "e.g. systemd's Delegate=yes, with the controllers enabled; cgroup v1: a writable "
                         "/sys/fs/cgroup/<controller>); "
                         "or remove those limits from the group");
  }

  auto make_tree = [&](const fs::path& base, fs::path& out) -> Status {
    if (base.empty()) return Status::ok();
    if (Status s = make_dir(base / "quern"); !s) return s;
    if (Status s = make_dir(base / "quern" / name); !s) return s;
    out = base / "quern" / name;
    return Status::ok();
  };
  if (!v2_base.empty()) {
    if (Status s = delegate_v2(v2_base, v2_controllers); !s) return s;
    if (Status s = make_tree(v2_base, t->v2_); !s) return s;
    if (Status s = delegate_v2(v2_base / "quern", v2_controllers); !s) return s;
    if (Status s = delegate_v2(t->v2_, v2_controllers); !s) return s;
  }
  if (Status s = make_tree(memory_base, t->memory_v1_); !s) return s;
  if (Status s = make_tree(pids_base, t->pids_v1_); !s) return s;
  if (Status s = make_tree(cpu_base, t->cpu_v1_); !s) return s;
  if (Status s = make_tree(cpuacct_base, t->cpuacct_v1_); !s) return s;

  if (!t->v2_.empty() && v1_used.empty())
    t->description_ = "cgroup v2";
  else if (!t->v2_.empty())
    t->description_ = "cgroup v1 " + v1_used + " + v2";
  else if (!v1_used.empty())
    t->description_ = "cgroup v1 " + v1_used;
  else
    t->description_ = "none";
  return t;
}

Status Tree::check(const Limits& limits) const {
  std::string missing;
  auto need = [&](bool asked, bool have, const char* what) {
    if (asked && !have) missing += std::string(missing.empty() ? "" : ", ") + what;
  };
  need(limits.memory_max > 0, v2_memory_ || !memory_v1_.empty(), "memory");
  need(limits.pids_max > 0, v2_pids_ || !pids_v1_.empty(), "pids");
  need(limits.cpu_max_milli > 0, v2_cpu_ || !cpu_v1_.empty(), "cpu");
  if (missing.empty()) return Status::ok();
  return Status::error("its limits need the cgroup controller(s) " + missing +
                       ", which this worker's machine does not give it (" + description_ + ")");
}

Tree::~Tree() {
  for (const fs::path* d : {&v2_, &memory_v1_, &pids_v1_, &cpu_v1_, &cpuacct_v1_})
    if (!d->empty()) ::rmdir(d->c_str());
}

int Tree::reap() {
  // A job's name in every hierarchy → its directories.
  std::map<std::string, Job> left;
  for (const fs::path* d : {&v2_, &memory_v1_, &pids_v1_, &cpu_v1_, &cpuacct_v1_}) {
    if (d->empty()) continue;
    std::error_code ec;
    for (auto it = fs::directory_iterator(*d, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      if (!it->is_directory()) continue;
      Job& j = left[it->path().filename().string()];
      j.dirs_.push_back(it->path());
      if (d == &v2_) j.v2_ = it->path();
    }
  }
  for (auto& [name, job] : left) {
    job.kill();
    job.remove();
  }
  return static_cast<int>(left.size());
}

StatusOr<Job> Tree::create(const std::string& name, const Limits& limits) const {
  Job job;
  auto add = [&](const fs::path& base) -> StatusOr<fs::path> {
    const fs::path dir = base / name;
    if (::mkdir(dir.c_str(), 0755) != 0) {
      if (errno != EEXIST)
        return Status::error("cannot create the cgroup " + dir.string() + ": " + std::strerror(errno));
      // A leftover of a crashed attempt: empty it first.
      Job old;
      old.dirs_ = {dir};
      old.kill();
      if (!old.remove()) return Status::error("the cgroup " + dir.string() + " still holds processes");
      if (::mkdir(dir.c_str(), 0755) != 0)
        return Status::error("cannot create the cgroup " + dir.string() + ": " + std::strerror(errno));
    }
    job.dirs_.push_back(dir);
    return dir;
  };
  auto limit = [&](const fs::path& dir, const char* file, const std::string& value) -> Status {
    return write_text(dir / file, value);
  };
  if (!v2_.empty()) {
    auto d = add(v2_);
    if (!d) return d.status();
    job.v2_ = *d;
    if (v2_memory_ && limits.memory_max > 0) {
      if (Status s = limit(*d, "memory.max", std::to_string(limits.memory_max)); !s) return s;
      if (fs::exists(*d / "memory.swap.max")) (void)limit(*d, "memory.swap.max", "0");
    }
    if (v2_pids_ && limits.pids_max > 0)
      if (Status s = limit(*d, "pids.max", std::to_string(limits.pids_max)); !s) return s;
    if (v2_cpu_ && limits.cpu_max_milli > 0)
      if (Status s = limit(*d, "cpu.max", std::to_string(limits.cpu_max_milli * 100) + " 100000"); !s)
        return s;
  }
  if (!memory_v1_.empty()) {
    auto d = add(memory_v1_);
    if (!d) return d.status();
    job.memory_v1_ = *d;
    if (limits.memory_max > 0) {
      if (Status s = limit(*d, "memory.limit_in_bytes", std::to_string(limits.memory_max)); !s) return s;
      if (fs::exists(*d / "memory.memsw.limit_in_bytes"))
        (void)limit(*d, "memory.memsw.limit_in_bytes", std::to_string(limits.memory_max));
    }
  }
  if (!pids_v1_.empty()) {
    auto d = add(pids_v1_);
    if (!d) return d.status();
    job.pids_v1_ = *d;
    if (limits.pids_max > 0)
      if (Status s = limit(*d, "pids.max", std::to_string(limits.pids_max)); !s) return s;
  }
  if (!cpu_v1_.empty() && limits.cpu_max_milli > 0) {
    auto d = add(cpu_v1_);
    if (!d) return d.status();
    if (Status s = limit(*d, "cpu.cfs_period_us", "100000"); !s) return s;
    if (Status s = limit(*d, "cpu.cfs_quota_us", std::to_string(limits.cpu_max_milli * 100)); !s) return s;
  }
  if (!cpuacct_v1_.empty()) {
    auto d = add(cpuacct_v1_);
    if (!d) return d.status();
    job.cpuacct_v1_ = *d;
  }
  return job;
}

}  // namespace quern::cgroup
