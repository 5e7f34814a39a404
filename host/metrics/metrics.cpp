#include "host/metrics/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <prometheus/text_serializer.h>

namespace quern::metrics {

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {}

prometheus::Family<prometheus::Counter>& Metrics::counter(const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
}
prometheus::Family<prometheus::Gauge>& Metrics::gauge(const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
}
prometheus::Family<prometheus::Histogram>& Metrics::histogram(const std::string& name,
                                                              const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
}

void Metrics::add_collector(Collector collector) {
  std::lock_guard lock(scrape_mu_);
  collectors_.push_back(std::move(collector));
}

void Metrics::add_refresh(std::function<void()> refresh) {
  std::lock_guard lock(scrape_mu_);
  refreshes_.push_back(std::move(refresh));
}

std::string Metrics::scrape() const {
  std::lock_guard lock(scrape_mu_);
  for (const auto& r : refreshes_) r();
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (const Collector& c : collectors_) {
    auto more = c();
    for (auto& f : more) families.push_back(std::move(f));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return b;
}
const prometheus::Histogram::BucketBoundaries& duration_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
  return b;
}

std::string LabelLimit::admit(const std::string& value) {
  std::lock_guard lock(mu_);
  if (seen_.count(value)) return value;
  if (seen_.size() >= max_) return "_other";
  seen_.insert(value);
  return value;
}

prometheus::MetricFamily make_family(const std::string& name, const std::string& help,
                                     prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void add_sample(prometheus::MetricFamily& family, double value,
                std::vector<prometheus::ClientMetric::Label> labels) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (family.type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else if (family.type == prometheus::MetricType::Gauge) {
    m.gauge.value = value;
  } else {
    m.untyped.value = value;
  }
  family.metric.push_back(std::move(m));
}

namespace {

// Fields of /proc/self/stat after the command name (which may hold spaces
// and parentheses, so the parse starts after the last ')').
struct ProcStat {
  double utime_ticks = 0, stime_ticks = 0, start_ticks = 0, vsize = 0, rss_pages = 0, threads = 0;
};

// nullopt when unreadable or malformed (a number that does not parse).
std::optional<ProcStat> read_proc_stat() {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x;) f.push_back(x);
  // After ')': state is field 3 of proc(5); f[0] = field 3.
  if (f.size() < 22) return std::nullopt;
  ProcStat s;
  try {
    s.utime_ticks = std::stod(f[11]);  // 14 utime
    s.stime_ticks = std::stod(f[12]);  // 15 stime
    s.threads = std::stod(f[17]);      // 20 num_threads
    s.start_ticks = std::stod(f[19]);  // 22 starttime (ticks after boot)
    s.vsize = std::stod(f[20]);        // 23 vsize (bytes)
    s.rss_pages = std::stod(f[21]);    // 24 rss (pages)
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return s;
}

const double kTicksPerSecond = static_cast<double>(::sysconf(_SC_CLK_TCK));
const double kPageBytes = static_cast<double>(::sysconf(_SC_PAGESIZE));

ProcessUsage usage_of(const ProcStat& s) {
  return {s.rss_pages * kPageBytes, (s.utime_ticks + s.stime_ticks) / kTicksPerSecond};
}

double boot_time_s() {
  std::ifstream in("/proc/stat");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  return 0;
}

int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n - 1;  // the directory's own descriptor
}

// The memory limit of this process's cgroup: cgroup v2's memory.max, else
// v1's memory.limit_in_bytes; 0 when there is none ("max", or v1's
// "unlimited" near 2^63).
double memory_limit_bytes() {
  std::ifstream in("/proc/self/cgroup");
  std::string v2_path, v1_path;
  for (std::string line; std::getline(in, line);) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (line.compare(0, a, "0") == 0 && controllers.empty()) v2_path = path;
    std::istringstream list(controllers);
    for (std::string c; std::getline(list, c, ',');)
      if (c == "memory") v1_path = path;
  }
  auto read = [](const std::string& file) -> double {
    std::ifstream f(file);
    std::string v;
    if (!(f >> v) || v == "max") return 0;
    try {
      const double x = std::stod(v);
      return x >= 9.2e18 / 2 ? 0 : x;  // v1 writes PAGE_COUNTER_MAX for "no limit"
    } catch (const std::exception&) {
      return 0;
    }
  };
  if (!v1_path.empty())
    if (double l = read("/sys/fs/cgroup/memory" + v1_path + "/memory.limit_in_bytes"); l > 0) return l;
  if (!v2_path.empty()) return read("/sys/fs/cgroup" + v2_path + "/memory.max");
  return 0;
}

}  // namespace

std::optional<ProcessUsage> process_usage() {
  auto s = read_proc_stat();
  if (!s) return std::nullopt;
  return usage_of(*s);
}

Collector process_collector() {
  const double boot = boot_time_s();
  return [=] {
    std::vector<prometheus::MetricFamily> out;
    const auto s = read_proc_stat();
    if (!s) return out;  // report nothing rather than garbage
    const ProcessUsage u = usage_of(*s);
    auto add = [&](const char* name, const char* help, double v,
                   prometheus::MetricType type = prometheus::MetricType::Gauge) {
      out.push_back(make_family(name, help, type));
      add_sample(out.back(), v);
    };
    add("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", u.cpu_seconds,
        prometheus::MetricType::Counter);
    add("process_resident_memory_bytes", "Resident memory size in bytes.", u.rss_bytes);
    add("process_virtual_memory_bytes", "Virtual memory size in bytes.", s->vsize);
    add("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
        boot + s->start_ticks / kTicksPerSecond);
    add("process_open_fds", "Open file descriptors.", open_fds());
    add("process_threads", "Threads of the process.", s->threads);
    if (double limit = memory_limit_bytes(); limit > 0)
      add("quern_process_memory_limit_bytes",
          "The memory limit of the process's cgroup (systemd MemoryMax=, a pod's limit); absent when none.",
          limit);
    return out;
  };
}

}  // namespace quern::metrics
