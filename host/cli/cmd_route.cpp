// `quern route test`: which routing rule a submission would match, and the
// tag and priority it would get (docs/ROUTING.md).
#include <iostream>

#include <nlohmann/json.hpp>

#include "host/cli/commands.h"
#include "host/common/json_input.h"

namespace quern::cli {

namespace {

struct RouteArgs {
  CommonOptions common;
  std::string path;
  std::string language = "bash";
  std::string args_json = "{}";
  std::string role;
  std::string group;
  std::string tag;
  int priority = 0;
  bool json = false;
};

// The line number at the end of "file:line", or 0.
int line_of(const std::string& where) {
  const size_t colon = where.rfind(':');
  if (colon == std::string::npos) return 0;
  try {
    return std::stoi(where.substr(colon + 1));
  } catch (...) {
    return 0;
  }
}

std::string source_text(const std::string& source) {
  if (source == "rule") return "from the rule";
  if (source == "explicit") return "explicit: the job's or its script's own";
  if (source == "language") return "the job's language";
  return "the queue's default";
}

int route_test(const RouteArgs& a) {
  auto cfg = load_effective_config(a.common);
  if (!cfg) {
    std::cerr << "quern route test: " << cfg.message() << "\n";
    return 2;
  }
  routing::Submission s;
  s.language = a.language;
  s.path = a.path;
  auto args = json_input::parse<nlohmann::ordered_json>(a.args_json, "--args");
  if (!args || !args->is_object()) {
    std::cerr << "quern route test: "
              << (args ? "--args must be a JSON object, e.g. '{\"region\": \"eu\"}'" : args.message())
              << "\n";
    return 2;
  }
  s.args = std::move(args).value();
  s.role = a.role;
  s.group = a.group;
  s.explicit_tag = a.tag;
  s.explicit_priority = a.priority;
  auto d = routing::route(cfg->routing_rules, s);
  if (!d) {
    if (a.json)
      std::cout << nlohmann::ordered_json{{"error", d.message()}}.dump() << "\n";
    else
      std::cerr << "quern route test: " << d.message() << "\n";
    return 1;
  }
  const int priority = d->priority > 0 ? d->priority : queue::kDefaultPriority;
  if (a.json) {
    nlohmann::ordered_json out{{"matched", d->rule_number > 0}};
    if (d->rule_number > 0) {
      out["rule"] = d->rule_number;
      out["where"] = d->rule_where;
      out["line"] = line_of(d->rule_where);
    }
    out["tag"] = d->tag;
    out["tag_source"] = d->tag_source;
    out["priority"] = priority;
    out["priority_source"] = d->priority_source;
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (d->rule_number > 0)
    std::cout << "rule " << d->rule_number << " matched (" << d->rule_where << ")\n";
  else
    std::cout << "no rule matched (" << cfg->routing_rules.size() << " rules in "
              << (cfg->source.empty() ? std::string("the built-in config") : cfg->source.string()) << ")\n";
  std::cout << "tag: " << d->tag << "  (" << source_text(d->tag_source) << ")\n";
  std::cout << "priority: " << priority << "  (" << source_text(d->priority_source) << ")\n";
  return 0;
}

}  // namespace

void register_route(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<RouteArgs>();
  auto* route = app.add_subcommand("route", "Routing rules (the <routing> section of the config)");
  route->require_subcommand(1);
  auto* test = route->add_subcommand("test", "Show which rule a submission matches and the tag it gets");
  test->add_option("--config", a->common.config_file,
                   "XML config file (default: $QUERN_CONFIG or ./config/quern.xml)");
  test->add_option("--path", a->path, "Script path, e.g. f/team/name (none: inline code)");
  test->add_option("--language,-l", a->language, "Language of the job (default: bash)");
  test->add_option("--args,-a", a->args_json, "Arguments as a JSON object");
  const auto& roles = routing::known_roles();
  test->add_option("--role", a->role, "Role of the submitting token (default: none)")
      ->check(CLI::IsMember(roles));
  test->add_option("--group", a->group, "Group of the submitting token (agent tokens)");
  test->add_option("--tag,-t", a->tag, "Explicit tag of the job or its script");
  test->add_option("--priority,-p", a->priority, "Explicit priority of the job or its script (1..100)")
      ->check(CLI::Range(1, 100));
  test->add_flag("--json", a->json, "Print the decision as JSON");
  test->callback([a, exit_code] { *exit_code = route_test(*a); });
}

}  // namespace quern::cli
