// Implementation of routing.h: template parsing and expansion, matching, and
// the first-match decision.
#include "host/routing/routing.h"

#include <fnmatch.h>

#include <algorithm>

#include "host/common/utf8.h"
#include "host/common/validation.h"

namespace quern::routing {
namespace {

using validation::is_tag_char;

bool is_arg_name_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' ||
         c == '-';
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool glob_matches(const std::string& pattern, const std::string& text) {
  return ::fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

// The text an argument's value is compared as: strings as they are, anything
// else as its JSON text.
std::string match_text(const nlohmann::ordered_json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

}  // namespace

bool is_valid_tag(std::string_view text) { return validation::is_tag(text); }

const std::vector<std::string>& known_roles() {
  static const std::vector<std::string> kRoles = {"admin", "developer", "operator", "agent"};
  return kRoles;
}

StatusOr<TagTemplate> TagTemplate::parse(std::string_view text) {
  TagTemplate t;
  t.text_ = std::string(text);
  if (text.empty()) return Status::invalid("expected a tag (may use $language, $path, $args[name])");
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '$') {
      const size_t start = i;
      while (i < text.size() && text[i] != '$') {
        if (!is_tag_char(text[i]))
          return Status::invalid(std::string("character '") + text[i] +
                                 "' cannot be part of a tag (allowed: [A-Za-z0-9_.:/-] and $language, $path, "
                                 "$args[name])");
        ++i;
      }
      t.pieces_.push_back({Kind::literal, std::string(text.substr(start, i - start))});
      continue;
    }
    const std::string_view rest = text.substr(i + 1);
    if (rest.substr(0, 8) == "language") {
      t.pieces_.push_back({Kind::language, ""});
      i += 9;
    } else if (rest.substr(0, 4) == "path") {
      t.pieces_.push_back({Kind::path, ""});
      i += 5;
    } else if (rest.substr(0, 5) == "args[") {
      const size_t close = rest.find(']', 5);
      if (close == std::string_view::npos) return Status::invalid("unclosed $args[ (expected $args[name])");
      const std::string_view name = rest.substr(5, close - 5);
      if (name.empty() || !std::all_of(name.begin(), name.end(), is_arg_name_char))
        return Status::invalid("bad argument name in $args[" + std::string(name) +
                               "] (expected [A-Za-z0-9_.-]+)");
      t.pieces_.push_back({Kind::arg, std::string(name)});
      i += 1 + close + 1;
    } else {
      return Status::invalid("unknown substitution at \"" + std::string(text.substr(i, 12)) +
                             "\" (allowed: $language, $path, $args[name])");
    }
  }
  return t;
}

StatusOr<std::string> TagTemplate::expand(const Submission& s) const {
  std::string out;
  for (const Piece& p : pieces_) {
    switch (p.kind) {
      case Kind::literal:
        out += p.text;
        break;
      case Kind::language:
        out += s.language;
        break;
      case Kind::path:
        if (s.path.empty())
          return Status::invalid("tag \"" + text_ +
                                 "\" uses $path, but the job has no script path (inline code)");
        out += s.path;
        break;
      case Kind::arg: {
        const auto it = s.args.is_object() ? s.args.find(p.text) : s.args.end();
        if (!s.args.is_object() || it == s.args.end())
          return Status::invalid("tag \"" + text_ + "\" needs argument \"" + p.text +
                                 "\", which the job does not have");
        if (!it->is_string() && !it->is_number() && !it->is_boolean())
          return Status::invalid("tag \"" + text_ + "\": argument \"" + p.text + "\" is " +
                                 std::string(it->type_name()) +
                                 "; only a string, number or boolean can be part of a tag");
        out += match_text(*it);
        break;
      }
    }
  }
  if (!is_valid_tag(out))
    return Status::invalid("tag \"" + text::to_storable(out.substr(0, 100)) +
                           (out.size() > 100 ? "..." : "") + "\" (from \"" + text_ +
                           "\") is not a valid tag (1.." + std::to_string(validation::kMaxTagBytes) +
                           " characters of [A-Za-z0-9_.:/-])");
  return out;
}

bool matches(const Rule& rule, const Submission& s) {
  if (!rule.languages.empty() && !contains(rule.languages, s.language)) return false;
  // Inline code has no path: a path rule never matches it, not even "*".
  if (!rule.path_glob.empty() && (s.path.empty() || !glob_matches(rule.path_glob, s.path))) return false;
  if (!rule.roles.empty() && !contains(rule.roles, s.role)) return false;
  if (!rule.groups.empty() && (s.group.empty() || !contains(rule.groups, s.group))) return false;
  if (rule.arg) {
    if (!s.args.is_object()) return false;
    const auto it = s.args.find(rule.arg->name);
    if (it == s.args.end()) return false;
    switch (rule.arg->op) {
      case ArgMatch::Op::present:
        break;
      case ArgMatch::Op::equals:
        if (match_text(*it) != rule.arg->value) return false;
        break;
      case ArgMatch::Op::glob:
        if (!glob_matches(rule.arg->value, match_text(*it))) return false;
        break;
    }
  }
  return true;
}

StatusOr<Decision> route(const std::vector<Rule>& rules, const Submission& s) {
  Decision d;
  const Rule* rule = nullptr;
  for (size_t i = 0; i < rules.size(); ++i) {
    if (matches(rules[i], s)) {
      rule = &rules[i];
      d.rule_number = static_cast<int>(i) + 1;
      d.rule_where = rule->where;
      break;
    }
  }
  if (rule && rule->tag && (s.explicit_tag.empty() || rule->force)) {
    StatusOr<std::string> tag = rule->tag->expand(s);
    if (!tag)
      return Status::invalid("routing rule " + std::to_string(d.rule_number) +
                             (rule->where.empty() ? "" : " (" + rule->where + ")") + ": " + tag.message());
    d.tag = std::move(tag).value();
    d.tag_source = "rule";
  } else if (!s.explicit_tag.empty()) {
    d.tag = s.explicit_tag;
    d.tag_source = "explicit";
  } else {
    d.tag = s.language;
    d.tag_source = "language";
  }
  if (rule && rule->priority > 0 && (s.explicit_priority == 0 || rule->force)) {
    d.priority = rule->priority;
    d.priority_source = "rule";
  } else if (s.explicit_priority > 0) {
    d.priority = s.explicit_priority;
    d.priority_source = "explicit";
  } else {
    d.priority_source = "default";
  }
  return d;
}

Status route_into(const std::vector<Rule>& rules, const Submission& s, int default_priority, std::string& tag,
                  int& priority) {
  auto decision = route(rules, s);
  if (!decision) return decision.status();
  tag = decision->tag;
  priority = decision->priority > 0 ? decision->priority : default_priority;
  return Status::ok();
}

}  // namespace quern::routing
