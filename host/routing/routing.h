// Routing rules: which tag (and priority) a job gets at submission
// (docs/ROUTING.md). The rules come from the <routing> section of the config
// (host/config parses them into Rule values); the server applies them where
// it builds a job for a run, `quern run` where it pushes one itself, and
// `quern route test` shows what they decide.
//
// Evaluation: the rules are tried in order and the first whose every matcher
// holds decides. A matcher that is not set matches anything. The rule's tag
// replaces the default (the language) but not an explicit tag of the job or
// of its script, unless the rule says force="true"; the same holds for its
// priority.
//
// Tag templates: literal text with $language, $path and $args[name]. A
// template that names an argument the job does not have, or whose value is
// not a string, number or boolean, is an evaluation error (the submission is
// refused): an empty substitution would silently route the job to a tag no
// worker serves.
//
// Thread-safety: Rule, TagTemplate and Submission are plain values; route()
// is a pure function, safe to call from any number of threads at once.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/common/status.h"

namespace quern::routing {

// What is known about a job when its tag is decided.
struct Submission {
  std::string language;
  std::string path;                                                // script path; empty for inline code
  nlohmann::ordered_json args = nlohmann::ordered_json::object();  // the job's arguments
  std::string role;           // the submitting token's role ("admin", "developer", ...); empty = no token
  std::string group;          // the submitting token's group (agent tokens); usually empty
  std::string explicit_tag;   // set by the job, else by its script; empty = none
  int explicit_priority = 0;  // set by the job, else by its script; 0 = none
};

// A tag with $language, $path and $args[name] in it.
class TagTemplate {
 public:
  // Errors: a '$' not followed by language, path or args[NAME]; an empty or
  // unclosed [NAME]; literal characters a tag may not hold.
  static StatusOr<TagTemplate> parse(std::string_view text);

  const std::string& text() const { return text_; }
  // The tag for this submission; errors as described at the top of the file.
  StatusOr<std::string> expand(const Submission& s) const;

 private:
  enum class Kind { literal, language, path, arg };
  struct Piece {
    Kind kind;
    std::string text;  // the literal, or the argument's name
  };
  std::string text_;
  std::vector<Piece> pieces_;
};

// Matches one argument: present (any value), equal to a value, or matching a
// glob. Non-string values compare by their JSON text (3, true, null).
struct ArgMatch {
  enum class Op { present, equals, glob };
  std::string name;
  Op op = Op::present;
  std::string value;
};

struct Rule {
  std::string where;  // "file:line" of the rule, for messages ("" when not from a file)
  // Matchers; empty = any.
  std::vector<std::string> languages;  // any of these
  std::string path_glob;               // fnmatch(3) without flags: '*' also matches '/'
  std::vector<std::string> roles;      // any of these roles of the submitting token
  std::vector<std::string> groups;     // any of these groups of the submitting token
  std::optional<ArgMatch> arg;
  // Actions; at least one is set (the config parser checks).
  std::optional<TagTemplate> tag;
  int priority = 0;    // 1..100; 0 = leave it
  bool force = false;  // override an explicit tag/priority of the job or script
};

// The outcome for one submission.
struct Decision {
  int rule_number = 0;     // 1-based position of the rule that matched; 0 = none matched
  std::string rule_where;  // its "file:line"
  std::string tag;
  std::string tag_source;       // "explicit", "rule" or "language"
  int priority = 0;             // 0 = the queue's default
  std::string priority_source;  // "explicit", "rule" or "default"
};

// Whether every matcher of the rule holds for the submission.
bool matches(const Rule& rule, const Submission& s);

// The first matching rule decides (see the top of the file). Errors are
// evaluation errors of the matching rule's template, prefixed with the rule's
// number and place: "routing rule 3 (config/quern.xml:41): ...".
StatusOr<Decision> route(const std::vector<Rule>& rules, const Submission& s);

// route() written into a job's fields: `tag` gets the decided tag,
// `priority` the decided priority or `default_priority` when neither a rule
// nor the submission sets one. Nothing changes on error.
Status route_into(const std::vector<Rule>& rules, const Submission& s, int default_priority, std::string& tag,
                  int& priority);

// Whether text may be a tag chosen by a rule: 1..300 bytes of
// [A-Za-z0-9_.:/-] ('/' so that $path can be part of it).
bool is_valid_tag(std::string_view text);

// The role names a rule may match (auth::to_string of every auth::Role; kept
// here so that the config parser need not link the token store; a test checks
// the two lists agree).
const std::vector<std::string>& known_roles();

}  // namespace quern::routing
