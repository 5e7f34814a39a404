// Fuzz target: the XML configuration parser (host/config/config.h).
//
// Properties: parse_config never crashes; every error starts with the
// source name ("fuzz.xml:LINE: " or "fuzz.xml: "); an accepted config holds
// the invariants config.h and docs/CONFIG.md state (positive lease timeout and
// poll interval, heartbeat below the lease timeout, at least one worker group
// of valid names and tags, rules that set a tag or a priority, limits that
// limit something). parse_duration (also fed the whole input) never crashes
// and gives 0..10 years.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "host/config/config.h"
#include "host/config/xml_reader.h"
#include "host/routing/routing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quern;
  const std::string xml(reinterpret_cast<const char*>(data), size);

  auto duration = config::parse_duration(xml);
  if (duration) {
    FUZZ_CHECK(duration->count() >= 0);
    FUZZ_CHECK(duration->count() <= 10LL * 365 * 24 * 3600 * 1000 + 1);
  }

  auto parsed = config::parse_config(xml, "fuzz.xml");
  if (!parsed) {
    FUZZ_CHECK_MSG(parsed.message().rfind("fuzz.xml:", 0) == 0, parsed.message());
    return 0;
  }
  const config::Config& c = *parsed;
  FUZZ_CHECK(c.source == "fuzz.xml");
  FUZZ_CHECK(c.lease_timeout.count() > 0);
  FUZZ_CHECK(c.poll_interval.count() > 0);
  FUZZ_CHECK(c.effective_heartbeat_interval().count() > 0);
  FUZZ_CHECK(c.effective_heartbeat_interval() < c.lease_timeout);
  FUZZ_CHECK(c.max_restarts >= 0 && c.max_restarts <= 1000);
  FUZZ_CHECK(c.default_timeout_s >= 1);
  FUZZ_CHECK(c.max_timeout_s == 0 || c.max_timeout_s >= c.default_timeout_s);
  FUZZ_CHECK(c.server_handler_threads >= 1 && c.server_db_connections >= 1);
  FUZZ_CHECK(!c.groups.empty());
  for (const config::WorkerGroup& g : c.groups) {
    FUZZ_CHECK(config::is_name(g.name));
    FUZZ_CHECK(g.slots >= 1 && g.slots <= 1024);
    for (const std::string& tag : g.tags) FUZZ_CHECK(config::is_name(tag));
    for (const std::string& path : g.dedicated) FUZZ_CHECK(!path.empty());
  }
  for (const config::PluginEntry& p : c.plugins) FUZZ_CHECK(!p.path.empty());
  for (const routing::Rule& rule : c.routing_rules) {
    FUZZ_CHECK(rule.tag || (rule.priority >= 1 && rule.priority <= 100));
    FUZZ_CHECK(rule.priority == 0 || (rule.priority >= 1 && rule.priority <= 100));
    FUZZ_CHECK(rule.where.rfind("fuzz.xml:", 0) == 0);
  }
  for (const queue::ConcurrencyLimit& limit : c.limits) {
    FUZZ_CHECK(!limit.key.empty() && limit.key.size() <= 256);
    FUZZ_CHECK(limit.max_running > 0 || limit.rate_max > 0);
    FUZZ_CHECK_MSG(queue::validate(limit).is_ok(), queue::validate(limit).message());
  }
  return 0;
}
