// The XML configuration (config/quern.xml), parsed with pugixml.
//
// Every error names the file, the line and what was expected, e.g.
//   config/quern.xml:12: <group slots="abc">: expected a positive integer (1..1024)
// The line is that of the offending attribute (or element, or text).
// Unknown elements and attributes are errors (typos must not pass silently).
// Durations accept "250ms", "30s", "5m", "1h", "30d" or a plain number of seconds.
// The full reference (every element, attribute and default) is docs/CONFIG.md.
//
// Paths: load_config() resolves every relative path in the result (data_dir,
// plugin_dir, each plugin's path — written or defaulted) against the directory
// of the config file, so config/quern.xml with data-dir="../.quern" means
// <checkout>/.quern whatever the working directory of `quern` is. The resolved
// paths are absolute and lexically normalized. parse_config() has no file and
// leaves paths as written; resolve_paths() applies the same rule to any base.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "host/common/status.h"
#include "host/queue/job_policy.h"
#include "host/routing/routing.h"

namespace quern::config {

// <group><autoscale .../></group>: how many workers of the group should run,
// decided from the queue (host/autoscale, docs/AUTOSCALING.md, which gives
// every field with its default). Counts are workers (processes), not slots.
struct Autoscale {
  // Who acts on a decision: "local" (quern up starts and stops `quern
  // worker` processes of the group on this machine), "script" (an operator's
  // command), "keda" (served to KEDA's metrics-api / prometheus scalers),
  // "dry-run" (decides and records, changes nothing).
  std::string integration;
  int min = 0;
  int max = 1;
  std::chrono::milliseconds tick{2000};
  // After a change, no step (in or out) for this long; a scale from zero and
  // a scale-out on a large backlog ignore it.
  std::chrono::milliseconds cooldown{30000};
  int scale_out_step = 0;  // workers added per step; 0 = as many as the backlog needs
  int scale_in_step = 1;   // workers removed per step
  // Scale out only when the jobs that more workers would start (runnable +
  // due soon) exceed the free slots and number at least this many.
  int scale_out_backlog = 1;
  // Runnable jobs that scale straight to what they need, ignoring the
  // cooldown and the step; 0 = max workers' worth of slots.
  int full_scale_backlog = 0;
  // Scale in one step while occupancy (busy / slots) over both windows is
  // below this (percent) and nothing runnable waits.
  int scale_in_occupancy_pct = 50;
  std::chrono::milliseconds occupancy_short{30000};
  std::chrono::milliseconds occupancy_long{300000};
  // Nothing running, runnable or due soon for this long: down to min at once.
  std::chrono::milliseconds idle_before_zero{300000};
  // Jobs (delayed, retried, or a schedule's next tick) due within this count
  // as wanting a worker now, so that one is warm in time.
  std::chrono::milliseconds lookahead{60000};
  // integration="script": the executable (absolute after load_config) and
  // how long one call may take before it is killed and recorded as failed.
  std::filesystem::path script;
  int script_line = 0;  // where `script` was written, for load_config's check
  std::chrono::milliseconds script_timeout{30000};
  bool operator==(const Autoscale&) const = default;
};

// <workers><group name slots tags plugins pass-env dedicated/></workers>: what
// one kind of worker serves (docs/ROUTING.md, "Worker groups").
// The executor plugins built and shipped with Quern (plugins/): bash, python,
// sql, http, gpu, noop. They are tested, fuzzed and sanitized with the host
// and run user code only in child processes, so by default they run in the
// worker's process; any other plugin runs in slot processes.
std::vector<std::string> first_party_plugins();

struct WorkerGroup {
  std::string name = "default";
  int slots = 4;
  std::vector<std::string> tags = {"bash"};
  // Executor plugins the group's workers load, by plugin name (the NAME of
  // libquern_NAME.so); the others are not loaded. Empty = every plugin found.
  std::vector<std::string> plugins;
  // Host environment variables passed on to jobs (names; those unset on the
  // worker's host are skipped). Jobs otherwise get a minimal environment.
  std::vector<std::string> pass_env;
  // Scripts this group keeps warm (dedicated workers): <group dedicated="f/a/b,f/c/d">.
  std::vector<std::string> dedicated;
  // Plugins whose code runs inside the worker's own process instead of a
  // slot process per slot: <group in-process="sql,http">, or "none". Faster
  // per job, but a crash in such a plugin takes the worker (and, in `quern
  // up`, everything) down: for trusted plugins only. Default: Quern's own
  // plugins (first_party_plugins()); every other plugin is contained.
  // docs/ARCHITECTURE.md §7.
  std::vector<std::string> in_process = first_party_plugins();
  // How the group's job processes are confined: <group sandbox="bwrap"
  // network="host">. "bwrap" (the default): bubblewrap around every job
  // process (host/sandbox/sandbox.h); "none": jobs run unsandboxed as the
  // worker's user. network="none" gives jobs an empty network namespace.
  std::string sandbox = "bwrap";
  std::string network = "host";
  // Per-job resource limits, 0 = none (docs/CONFIG.md): memory-max (bytes),
  // pids-max, cpu-max (thousandths of a CPU), enforced with cgroups
  // (host/cgroup/cgroup.h); tmp-size (bytes of the sandbox's private /tmp)
  // and nofile (RLIMIT_NOFILE). A job may ask for less, never for more.
  int64_t memory_max = 0;
  int64_t pids_max = 0;
  int64_t cpu_max_milli = 0;
  int64_t tmp_size = 0;
  int64_t nofile = 0;
  // The user jobs run as when the worker runs as root (a name or a uid;
  // its primary group with it). Ignored when the worker is not root.
  std::string job_user = "nobody";
  // <autoscale> inside the group; none = a fixed number of workers (those
  // the operator starts; one per group in `quern up`).
  std::optional<Autoscale> autoscale;

  bool operator==(const WorkerGroup&) const = default;
};

// The groups of a config without <workers>: default (tags bash, python3;
// plugins bash, python), native (sql, http) and gpu (gpu), 4 slots each.
// A <group> in the file does not inherit from them: its defaults are those of
// WorkerGroup above (tags bash, every plugin).
std::vector<WorkerGroup> default_groups();

struct PluginEntry {
  std::filesystem::path path;
  std::string config_json = "{}";  // the plugin's own settings (child <setting name value/>)
};

struct Config {
  std::filesystem::path source;  // the file this came from (empty for defaults)

  // <database url="..." data-dir="..."/> — empty url = embedded PostgreSQL in data_dir.
  std::string database_url;
  std::filesystem::path data_dir = ".quern";

  // <plugins dir="..."><plugin path="..."/></plugins>
  std::filesystem::path plugin_dir;  // empty = next to the quern binary (../lib/quern/plugins or ./plugins)
  std::vector<PluginEntry> plugins;

  // <queue lease-timeout poll-interval heartbeat-interval max-restarts default-timeout max-timeout
  //        kill-grace/>
  // Checked: lease_timeout > 0, poll_interval > 0, effective heartbeat < lease_timeout.
  std::chrono::milliseconds lease_timeout{30000};
  std::chrono::milliseconds poll_interval{1000};
  std::chrono::milliseconds heartbeat_interval{0};  // 0 = lease_timeout / 3
  int max_restarts = 3;
  int default_timeout_s = 3600;
  int max_timeout_s = 0;  // largest timeout a job may ask for (0 = no maximum); >= default_timeout_s
  std::chrono::milliseconds kill_grace{2000};  // TERM → KILL on timeout/cancel

  // <workers><group .../></workers>; `quern up` starts one worker per group.
  std::vector<WorkerGroup> groups = default_groups();

  // <routing><rule .../></routing>: tag and priority at submission, tried in
  // order (host/routing/routing.h, docs/ROUTING.md). Empty = no rules.
  std::vector<routing::Rule> routing_rules;

  // <limits><limit key max-running rate/></limits>: the operator's numbers for
  // concurrency keys, replacing what jobs carry (docs/LIMITS.md).
  std::vector<queue::ConcurrencyLimit> limits;

  // <retention completed-jobs="30d" logs="14d"/>: how long finished jobs, and
  // the logs of finished jobs, are kept before `quern server` (or `quern
  // prune`) deletes them (host/retention, docs/OPERATIONS.md). nullopt =
  // "off": kept forever. A pruned job's logs go with it whatever `logs` says.
  std::optional<std::chrono::milliseconds> retention_completed_jobs = std::chrono::hours(24 * 30);
  std::optional<std::chrono::milliseconds> retention_logs = std::chrono::hours(24 * 14);

  // <server listen="127.0.0.1:8420" metrics-listen="127.0.0.1:9421" handler-threads="16" db-connections="16"
  //         db-idle-timeout="60s" max-wait="60s"/>: the HTTP API.
  // db-connections is the API's connection budget (requests share it; the
  // server process uses db-connections + 3 in all, docs/LIMITS.md); idle
  // connections close after db-idle-timeout. max-wait caps how long
  // run_wait_result and agent long polls may hold a request.
  std::string server_address = "127.0.0.1";
  uint16_t server_port = 8420;
  // metrics-listen="ADDRESS:PORT": where `quern server` and `quern up`
  // serve /metrics, /healthz and /readyz (docs/OPERATIONS.md); "" = not
  // served. The command's --metrics-listen overrides it.
  std::string server_metrics_listen;
  int server_handler_threads = 16;
  int server_db_connections = 16;
  std::chrono::milliseconds server_db_idle_timeout{60000};
  std::chrono::milliseconds server_max_wait{60000};

  std::chrono::milliseconds effective_heartbeat_interval() const {
    return heartbeat_interval.count() > 0 ? heartbeat_interval : lease_timeout / 3;
  }
};

// Parses XML text; `source_name` is used in error messages.
StatusOr<Config> parse_config(const std::string& xml_text, const std::string& source_name);
// Reads and parses a file. A missing file is an error naming the path.
// Relative paths are resolved against the file's directory (see above); an
// autoscale script that is then missing or not executable is an error
// naming the file and line.
StatusOr<Config> load_config(const std::filesystem::path& file);

// Makes data_dir, a non-empty plugin_dir and every plugin path absolute by
// resolving relative ones against `base_dir` (itself made absolute first).
void resolve_paths(Config& config, const std::filesystem::path& base_dir);

// Environment overrides, applied by the caller after load_config() (kept
// separate so that parsing stays a pure function of the file):
//   QUERN_DATABASE_URL — if set and non-empty, replaces database_url (so a
//   deployment can point at an external PostgreSQL without editing the file;
//   an empty value is ignored, it does not force the embedded database).
void apply_environment(Config& config);

// "250ms" / "30s" / "5m" / "1h" / "30d" / "2.5" (seconds).
StatusOr<std::chrono::milliseconds> parse_duration(const std::string& text);

}  // namespace quern::config
