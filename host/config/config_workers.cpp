// <workers>: the worker groups, and the built-in groups of a config without
// that element. Contract in config.h; reference in docs/CONFIG.md.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string_view>

#include "host/common/validation.h"
#include "host/config/config_sections.h"

namespace quern::config {
namespace {

constexpr int kMaxSlots = 1024;

bool is_alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Plugin names as in libquern_NAME.so.
bool is_plugin_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return is_alnum(c) || c == '_' || c == '-' || c == '.'; });
}

bool is_env_name(std::string_view s) {
  return !s.empty() && !(s[0] >= '0' && s[0] <= '9') &&
         std::all_of(s.begin(), s.end(), [](char c) { return is_alnum(c) || c == '_'; });
}

// Why a variable may not be passed on to jobs, or empty when it may.
std::string env_refusal(std::string_view name) {
  if (name.substr(0, 6) == "QUERN_")
    return "QUERN_ variables are the worker's own (database URL, tokens) and never reach a job";
  if (name == "HOME" || name == "TMPDIR") return "Quern sets it to each job's own working directory";
  return {};
}

Status parse_dedicated(const XmlReader& r, pugi::xml_node node, pugi::xml_attribute attr,
                       std::vector<std::string>& out) {
  // Script paths (f/team/name): the same characters as tags plus '/'.
  std::string_view rest = attr.value();
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view path = trim(rest.substr(0, comma));
    const bool ok = !path.empty() && std::all_of(path.begin(), path.end(), [](char c) {
      return c == '/' || is_name(std::string_view(&c, 1));
    });
    if (!ok) return r.attr_error(node, attr, "expected comma-separated script paths like f/team/name");
    out.emplace_back(path);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return Status::ok();
}

// validation::parse_size / parse_cpus, as attributes.
Status read_size(const XmlReader& r, pugi::xml_node node, const char* name, int64_t lo, int64_t& out) {
  pugi::xml_attribute attr = node.attribute(name);
  if (!attr) return Status::ok();
  auto v = validation::parse_size(trim(attr.value()), name, lo);
  if (!v) return r.attr_error(node, attr, validation::size_expectation(lo));
  out = *v;
  return Status::ok();
}

Status read_cpus(const XmlReader& r, pugi::xml_node node, const char* name, int64_t& out) {
  pugi::xml_attribute attr = node.attribute(name);
  if (!attr) return Status::ok();
  auto v = validation::parse_cpus(trim(attr.value()), name);
  if (!v) return r.attr_error(node, attr, validation::kCpusExpectation);
  out = *v;
  return Status::ok();
}

Status parse_limits(const XmlReader& r, pugi::xml_node node, WorkerGroup& group) {
  int pids = 0, nofile = 0;
  if (Status s = read_size(r, node, "memory-max", 4 << 20, group.memory_max); !s) return s;
  if (Status s = r.read_int(node, "pids-max", 1, 4194304, pids); !s) return s;
  if (Status s = read_cpus(r, node, "cpu-max", group.cpu_max_milli); !s) return s;
  if (Status s = read_size(r, node, "tmp-size", 1 << 20, group.tmp_size); !s) return s;
  if (Status s = r.read_int(node, "nofile", 16, 1048576, nofile); !s) return s;
  group.pids_max = pids;
  group.nofile = nofile;
  if (pugi::xml_attribute attr = node.attribute("job-user")) {
    group.job_user = std::string(trim(attr.value()));
    if (group.job_user.empty() || group.job_user == "root" || group.job_user == "0" ||
        !std::all_of(group.job_user.begin(), group.job_user.end(),
                     [](char c) { return is_alnum(c) || c == '_' || c == '-' || c == '.'; }))
      return r.attr_error(node, attr, "expected a user name or uid other than root");
  }
  return Status::ok();
}

StatusOr<WorkerGroup> parse_group(const XmlReader& r, pugi::xml_node node) {
  if (Status s = r.check_attributes(
          node, {"name", "slots", "tags", "plugins", "pass-env", "dedicated", "in-process", "sandbox",
                 "network", "memory-max", "pids-max", "cpu-max", "tmp-size", "nofile", "job-user"});
      !s)
    return s;
  if (Status s = r.check_children(node, {"autoscale"}); !s) return s;
  if (Status s = r.check_unique_children(node); !s) return s;
  WorkerGroup group;
  if (pugi::xml_attribute attr = node.attribute("name")) {
    group.name = std::string(trim(attr.value()));
    if (!is_name(group.name)) return r.attr_error(node, attr, "expected a name made of [A-Za-z0-9_.:-]");
  }
  if (Status s = r.read_int(node, "slots", 1, kMaxSlots, group.slots); !s) return s;
  if (Status s = r.read_list(node, "tags", "tag", is_name, "[A-Za-z0-9_.:-]+", group.tags); !s) return s;
  if (Status s = r.read_list(node, "plugins", "plugin name", is_plugin_name,
                             "[A-Za-z0-9_.-]+, the NAME of libquern_NAME.so", group.plugins);
      !s) {
    return s;
  }
  if (trim(node.attribute("in-process").value()) == "none") {
    group.in_process.clear();
  } else if (Status s =
                 r.read_list(node, "in-process", "plugin name", is_plugin_name,
                             "[A-Za-z0-9_.-]+, the NAME of libquern_NAME.so, or none", group.in_process);
             !s) {
    return s;
  }
  if (Status s = r.read_list(node, "pass-env", "variable name", is_env_name, "[A-Za-z_][A-Za-z0-9_]*",
                             group.pass_env);
      !s) {
    return s;
  }
  for (const std::string& name : group.pass_env) {
    if (std::string why = env_refusal(name); !why.empty())
      return r.attr_error(node, node.attribute("pass-env"), name + " cannot be passed on: " + why);
  }
  // One word out of a fixed set.
  auto read_choice = [&](const char* name, std::initializer_list<const char*> allowed, std::string& out) {
    pugi::xml_attribute attr = node.attribute(name);
    if (!attr) return Status::ok();
    const std::string value(trim(attr.value()));
    std::string list;
    for (const char* a : allowed) {
      if (value == a) {
        out = value;
        return Status::ok();
      }
      list += list.empty() ? std::string(a) : std::string(" or ") + a;
    }
    return r.attr_error(node, attr, "expected " + list);
  };
  if (Status s = read_choice("sandbox", {"bwrap", "none"}, group.sandbox); !s) return s;
  if (Status s = read_choice("network", {"host", "none"}, group.network); !s) return s;
  if (Status s = parse_limits(r, node, group); !s) return s;
  if (pugi::xml_attribute attr = node.attribute("dedicated")) {
    if (Status s = parse_dedicated(r, node, attr, group.dedicated); !s) return s;
  }
  if (pugi::xml_node autoscale = node.child("autoscale")) {
    if (Status s = parse_autoscale(r, autoscale, group); !s) return s;
  }
  return group;
}

}  // namespace

std::vector<std::string> first_party_plugins() { return {"bash", "python", "sql", "http", "gpu", "noop"}; }

std::vector<WorkerGroup> default_groups() {
  WorkerGroup standard;
  standard.name = "default";
  standard.tags = {"bash", "python3"};
  standard.plugins = {"bash", "python"};
  WorkerGroup native;
  native.name = "native";
  native.tags = {"sql", "http"};
  native.plugins = {"sql", "http"};
  WorkerGroup gpu;
  gpu.name = "gpu";
  gpu.tags = {"gpu"};
  gpu.plugins = {"gpu"};
  return {standard, native, gpu};
}

Status parse_workers(const XmlReader& r, pugi::xml_node node, Config& config) {
  if (Status s = r.check_attributes(node, {}); !s) return s;
  if (Status s = r.check_children(node, {"group"}); !s) return s;
  std::vector<WorkerGroup> groups;
  std::map<std::string, int> seen;  // name -> line
  for (pugi::xml_node group_node : node.children("group")) {
    StatusOr<WorkerGroup> group = parse_group(r, group_node);
    if (!group) return group.status();
    if (auto [it, inserted] = seen.emplace(group->name, r.line_of(group_node)); !inserted) {
      const std::string message =
          "duplicate group name \"" + group->name + "\" (first at line " + std::to_string(it->second) + ")";
      pugi::xml_attribute attr = group_node.attribute("name");
      return attr ? r.attr_error(group_node, attr, message) : r.node_error(group_node, message);
    }
    groups.push_back(std::move(group).value());
  }
  if (groups.empty()) return r.node_error(node, "expected at least one <group> (no workers would run)");
  config.groups = std::move(groups);
  return Status::ok();
}

}  // namespace quern::config
