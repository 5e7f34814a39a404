// <routing>: the routing rules, parsed into routing::Rule values (matching and
// evaluation are host/routing's). Reference in docs/ROUTING.md.
#include <algorithm>
#include <string_view>

#include "host/config/config_sections.h"
#include "host/routing/routing.h"

namespace quern::config {
namespace {

constexpr int kMinPriority = 1;
constexpr int kMaxPriority = 100;

bool is_arg_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '.' || c == '-';
  });
}

bool is_role(std::string_view s) {
  const auto& roles = routing::known_roles();
  return std::find(roles.begin(), roles.end(), s) != roles.end();
}

std::string role_hint() {
  std::string out = "one of ";
  for (const std::string& role : routing::known_roles()) out += (out.size() > 7 ? ", " : "") + role;
  return out;
}

Status parse_arg_match(const XmlReader& r, pugi::xml_node node, routing::Rule& rule) {
  pugi::xml_attribute arg = node.attribute("arg");
  pugi::xml_attribute equals = node.attribute("equals");
  pugi::xml_attribute glob = node.attribute("matches");
  if (!arg) {
    if (equals) return r.attr_error(node, equals, "needs arg=\"NAME\" (the argument to compare)");
    if (glob) return r.attr_error(node, glob, "needs arg=\"NAME\" (the argument to match)");
    return Status::ok();
  }
  if (equals && glob) return r.attr_error(node, glob, "give either equals or matches, not both");
  routing::ArgMatch m;
  m.name = std::string(trim(arg.value()));
  if (!is_arg_name(m.name))
    return r.attr_error(node, arg, "expected an argument name made of [A-Za-z0-9_.-]");
  if (equals) {
    m.op = routing::ArgMatch::Op::equals;
    m.value = equals.value();  // as written: " eu" differs from "eu"
  } else if (glob) {
    m.op = routing::ArgMatch::Op::glob;
    m.value = glob.value();
    if (m.value.empty()) return r.attr_error(node, glob, "expected a glob pattern such as \"eu-*\"");
  }
  rule.arg = std::move(m);
  return Status::ok();
}

StatusOr<routing::Rule> parse_rule(const XmlReader& r, pugi::xml_node node) {
  if (Status s = r.check_attributes(node, {"language", "path", "role", "group", "arg", "equals", "matches",
                                           "tag", "priority", "force"});
      !s) {
    return s;
  }
  if (Status s = r.check_children(node, {}); !s) return s;
  routing::Rule rule;
  rule.where = r.location(node);
  if (Status s = r.read_list(node, "language", "language", is_name, "[A-Za-z0-9_.:-]+", rule.languages); !s)
    return s;
  if (pugi::xml_attribute attr = node.attribute("path")) {
    rule.path_glob = std::string(trim(attr.value()));
    if (rule.path_glob.empty()) return r.attr_error(node, attr, "expected a glob such as \"f/ml/*\"");
  }
  const std::string roles_hint = role_hint();
  if (Status s = r.read_list(node, "role", "role", is_role, roles_hint.c_str(), rule.roles); !s) return s;
  if (Status s = r.read_list(node, "group", "group", is_name, "[A-Za-z0-9_.:-]+", rule.groups); !s) return s;
  if (Status s = parse_arg_match(r, node, rule); !s) return s;
  if (pugi::xml_attribute attr = node.attribute("tag")) {
    StatusOr<routing::TagTemplate> tag = routing::TagTemplate::parse(trim(attr.value()));
    if (!tag) return r.attr_error(node, attr, tag.message());
    rule.tag = std::move(tag).value();
  }
  if (Status s = r.read_int(node, "priority", kMinPriority, kMaxPriority, rule.priority); !s) return s;
  if (Status s = r.read_bool(node, "force", rule.force); !s) return s;
  if (!rule.tag && rule.priority == 0)
    return r.node_error(node, "a rule must set tag or priority (or both): it would change nothing");
  return rule;
}

}  // namespace

Status parse_routing(const XmlReader& r, pugi::xml_node node, Config& config) {
  if (Status s = r.check_attributes(node, {}); !s) return s;
  if (Status s = r.check_children(node, {"rule"}); !s) return s;
  std::vector<routing::Rule> rules;
  for (pugi::xml_node rule_node : node.children("rule")) {
    StatusOr<routing::Rule> rule = parse_rule(r, rule_node);
    if (!rule) return rule.status();
    rules.push_back(std::move(rule).value());
  }
  config.routing_rules = std::move(rules);
  return Status::ok();
}

}  // namespace quern::config
