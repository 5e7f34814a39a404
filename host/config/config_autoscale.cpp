// <group><autoscale/></group>: a worker group's autoscaling. Contract in
// config.h (struct Autoscale); reference in docs/AUTOSCALING.md.
#include <unistd.h>
#include <filesystem>

#include "host/config/config_sections.h"

namespace quern::config {
namespace {

constexpr int kMaxWorkers = 10000;

// "50%" or "50": a whole percentage 0..100.
Status read_percent(const XmlReader& r, pugi::xml_node node, const char* name, int& out) {
  pugi::xml_attribute attr = node.attribute(name);
  if (!attr) return Status::ok();
  std::string_view text = trim(attr.value());
  if (!text.empty() && text.back() == '%') text.remove_suffix(1);
  int value = -1;
  if (!text.empty() && text.size() <= 3 && text.find_first_not_of("0123456789") == std::string_view::npos)
    value = std::stoi(std::string(text));
  if (value < 0 || value > 100) return r.attr_error(node, attr, "expected a percentage from 0% to 100%");
  out = value;
  return Status::ok();
}

// A duration that must be at least `lo`.
Status read_duration_at_least(const XmlReader& r, pugi::xml_node node, const char* name,
                              std::chrono::milliseconds lo, std::chrono::milliseconds& out) {
  if (Status s = r.read_duration(node, name, out); !s) return s;
  if (pugi::xml_attribute attr = node.attribute(name); attr && out < lo)
    return r.attr_error(node, attr, "expected at least " + std::to_string(lo.count()) + "ms");
  return Status::ok();
}

}  // namespace

Status parse_autoscale(const XmlReader& r, pugi::xml_node node, WorkerGroup& group) {
  if (Status s = r.check_attributes(
          node, {"integration", "min", "max", "tick", "cooldown", "scale-out-step", "scale-in-step",
                 "scale-out-backlog", "full-scale-backlog", "scale-in-occupancy", "occupancy-short",
                 "occupancy-long", "idle-before-zero", "lookahead", "script", "script-timeout"});
      !s)
    return s;
  if (Status s = r.check_children(node, {}); !s) return s;
  if (Status s = r.require(node, "integration"); !s) return s;
  if (Status s = r.require(node, "max"); !s) return s;
  Autoscale a;
  pugi::xml_attribute integration = node.attribute("integration");
  a.integration = std::string(trim(integration.value()));
  if (a.integration != "local" && a.integration != "script" && a.integration != "keda" &&
      a.integration != "dry-run")
    return r.attr_error(node, integration, "expected local, script, keda or dry-run");
  if (Status s = r.read_int(node, "min", 0, kMaxWorkers, a.min); !s) return s;
  if (Status s = r.read_int(node, "max", 1, kMaxWorkers, a.max); !s) return s;
  if (a.min > a.max)
    return r.attr_error(
        node, node.attribute("min"),
        "min (" + std::to_string(a.min) + ") is greater than max (" + std::to_string(a.max) + ")");
  using std::chrono::milliseconds;
  if (Status s = read_duration_at_least(r, node, "tick", milliseconds(100), a.tick); !s) return s;
  if (Status s = r.read_duration(node, "cooldown", a.cooldown); !s) return s;
  if (Status s = r.read_int(node, "scale-out-step", 0, kMaxWorkers, a.scale_out_step); !s) return s;
  if (Status s = r.read_int(node, "scale-in-step", 1, kMaxWorkers, a.scale_in_step); !s) return s;
  if (Status s = r.read_int(node, "scale-out-backlog", 1, 1 << 30, a.scale_out_backlog); !s) return s;
  if (Status s = r.read_int(node, "full-scale-backlog", 0, 1 << 30, a.full_scale_backlog); !s) return s;
  if (Status s = read_percent(r, node, "scale-in-occupancy", a.scale_in_occupancy_pct); !s) return s;
  if (Status s = read_duration_at_least(r, node, "occupancy-short", a.tick, a.occupancy_short); !s) return s;
  if (Status s = read_duration_at_least(r, node, "occupancy-long", a.occupancy_short, a.occupancy_long); !s)
    return s;
  if (Status s = r.read_duration(node, "idle-before-zero", a.idle_before_zero); !s) return s;
  if (Status s = r.read_duration(node, "lookahead", a.lookahead); !s) return s;
  if (Status s = read_duration_at_least(r, node, "script-timeout", milliseconds(100), a.script_timeout); !s)
    return s;
  pugi::xml_attribute script = node.attribute("script");
  if (a.integration == "script") {
    if (!script)
      return r.node_error(node, "integration=\"script\" needs script=\"PATH\" (the command to run)");
    if (Status s = r.read_path(node, "script", a.script); !s) return s;
    a.script_line = r.line_of(node, script);
  } else if (script) {
    return r.attr_error(node, script, "script is only for integration=\"script\"");
  }
  group.autoscale = std::move(a);
  return Status::ok();
}

Status check_autoscale_scripts(const Config& config) {
  for (const WorkerGroup& g : config.groups) {
    if (!g.autoscale || g.autoscale->integration != "script") continue;
    const std::filesystem::path& script = g.autoscale->script;
    const std::string where = config.source.string() + ":" + std::to_string(g.autoscale->script_line) +
                              ": <autoscale script=\"" + script.string() + "\">: ";
    std::error_code ec;
    if (!std::filesystem::is_regular_file(script, ec))
      return Status::invalid(where + "no such file (the path is relative to the config file's folder)");
    if (::access(script.c_str(), X_OK) != 0) return Status::invalid(where + "not executable");
  }
  return Status::ok();
}

}  // namespace quern::config
